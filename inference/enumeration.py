"""Objectives and importance weights for models with a discrete latent summed out by parallel enumeration (M2).

* ``enum`` -- Pyro's ``TraceEnum_ELBO``: the guide marks its categorical site ``infer={"enumerate": "parallel"}``, Pyro
  evaluates every value at once in an enumeration dimension left of the model's plates, and the ELBO is exact in that
  site: for M2's unlabelled points it is sum_y q(y|x) [E_q(z|x,y) log p(x, y, z) / q(z|x,y)] + H(q(y|x)), for its
  labelled points the bound on log p(x, y). ``max_plate_nesting`` comes from the model.
* ``iwae-enum:K`` -- an importance-weighted bound that still trains q(y|x):
  L_K(x) = sum_y q(y|x) [ log (1/K) sum_k p(x, y, z_yk) / q(z_yk|x,y) - log q(y|x) ],  z_yk ~ q(z|x,y),
  K importance samples of z per class inside, the exact expectation over y outside. L_1 is the ``enum`` ELBO,
  L_K <= log p(x) and it grows with K towards log p(x) - KL(q(y|x) || p(y|x)), so its gradient pulls the classifier
  towards the model's posterior p(y|x). The *fully* marginalised estimator log (1/K) sum_k sum_y p(x,y,z_yk)/q(z_yk|x,y)
  (what ``TraceTMC_ELBO`` computes, and what the evaluation uses for log p(x)) does not depend on q(y|x) at all:
  its gradient for the classifier is exactly zero (tested), so it cannot serve to train M2's classifier.

Both add the paper's auxiliary term alpha * N * E_labelled[-log q(y|x)] (``model.alpha`` per data point; each
labelled occurrence in a batch weighs alpha * N / (r L), :func:`classification_weight`; see :mod:`zoo.m2`), and both
apply the objective's KL weight to the continuous latents only (log p(z) and log q(z|.)); the categorical site keeps
weight 1, as the KL weight of a beta-VAE is about z. A label y < 0 means "no label" (:mod:`zoo.data.labels`).

:func:`enumerated_weight_terms` is the evaluation's counterpart of :func:`inference.importance.weight_terms` for such
models: log w = log sum_y p(x, y, z_y) / q(z_y | x, y) (y summed inside), and the ELBO split into expectations under
q(y|x).
"""
import math
import warnings
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO
from pyro.poutine.messenger import Messenger

from inference.importance import log_mean_exp, scaled_log_prob
from inference.objectives import OBJECTIVES, Objective


# ------------------------------------------------------------------------------------------------ shared pieces
class ContinuousLatentScale(Messenger):
    """Multiply the log-density of every latent site *without* enumerable support by ``scale`` (the KL weight)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] and not getattr(msg["fn"], "has_enumerate_support", False):
            msg["scale"] = self.scale * msg["scale"]


def scale_continuous_latents(fn, scale: float):
    return fn if scale == 1.0 else ContinuousLatentScale(scale)(fn)


def categorical_sites(model):
    """The model's declared categorical latents ([] for models that declare none or no latents at all)."""
    try:
        sites = model.latent_sites()
    except (AttributeError, NotImplementedError):
        return []
    return [s for s in sites if s.support == "categorical"]


def has_enumerated_latents(model) -> bool:
    return bool(categorical_sites(model))


def enumeration_size(model) -> int:
    """How many joint values the enumerated sites take (memory factor of an enumerated evaluation)."""
    return math.prod(int(s.num_classes or 1) for s in categorical_sites(model))


def classification_weight(model, batch_size: int, n_labelled: int) -> float:
    """The weight of one labelled point's -log q(y|x) in a mini-batch's loss.

    With the training split's label counts known (``model.label_scale`` = N / (r L): N distinct training points,
    L of them labelled, each present r times; set by ``model.set_label_counts``) every labelled occurrence weighs
    ``alpha * N / (r L)`` whatever the batch holds, so one pass over the split adds ``alpha * N * mean_l(-log q(y|x))``:
    the paper's term, independent of the repetition r, of the batch size and of how labelled points fall into
    batches. Without them (a model used outside ``zoo train``) the batch's own ratio ``alpha * B / n_labelled``."""
    alpha = float(getattr(model, "alpha", 0.0) or 0.0)
    scale = getattr(model, "label_scale", None)
    if scale is None:
        return alpha * batch_size / max(n_labelled, 1)
    return alpha * float(scale)


def auxiliary_loss(model, guide, x, y):
    """sum over the batch's labelled points of :func:`classification_weight` * -log q(y|x) (0 without labels or with
    alpha = 0)."""
    alpha = float(getattr(model, "alpha", 0.0) or 0.0)
    if alpha == 0.0 or y is None:
        return x.new_zeros(())
    has = y >= 0
    n_labelled = int(has.sum())
    if n_labelled == 0:
        return x.new_zeros(())
    ce = F.cross_entropy(model.predict_logits(x[has], guide), y[has], reduction="sum")
    return classification_weight(model, x.shape[0], n_labelled) * ce


def split_by_label(x, y):
    """[(x_labelled, y_labelled), (x_unlabelled, None)], leaving out empty parts; y=None: all unlabelled."""
    if y is None:
        return [(x, None)]
    has = y >= 0
    parts = []
    if bool(has.any()):
        parts.append((x[has], y[has]))
    if not bool(has.all()):
        parts.append((x[~has], None))
    return parts


class EnumTerms(NamedTuple):
    """Per-(enumerated value, particle, point) log-densities; leading dims are the enumeration dims, then (K, B)."""
    log_p: torch.Tensor  # every model site, observed and latent
    log_obs: torch.Tensor  # observed model sites only
    log_q_cont: torch.Tensor  # the guide's non-enumerated sites
    log_q_enum: torch.Tensor  # the guide's enumerated sites (zeros when none)
    num_enum_dims: int
    latents: dict  # guide site name -> value (non-enumerated, floating)


def enumerated_terms(model, guide, x, y=None, num_particles: int = 1) -> EnumTerms:
    """Trace the guide with its enumerated sites enumerated in parallel and K particles of the rest (particle plate at
    dim -2, enumeration from dim -3 leftwards), replay the model, and collect each site's log-density.

    Works for models with ``max_plate_nesting = 1`` and one data plate per call (call it on the labelled and the
    unlabelled part separately: :func:`split_by_label`)."""
    if model.max_plate_nesting != 1:
        raise NotImplementedError("enumerated importance weights are written for max_plate_nesting = 1")
    K, B = num_particles, x.shape[0]
    with pyro.plate("particles", K, dim=-2):
        guide_trace = poutine.trace(poutine.enum(guide, first_available_dim=-3)).get_trace(x, y)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    terms = {"log_p": [], "log_obs": [], "log_q_cont": [], "log_q_enum": []}
    latents = {}
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        lp = scaled_log_prob(site)
        terms["log_p"].append(lp)
        if site["is_observed"]:
            terms["log_obs"].append(lp)
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        lp = scaled_log_prob(site)
        if site["infer"].get("enumerate") == "parallel":
            terms["log_q_enum"].append(lp)
        else:
            terms["log_q_cont"].append(lp)
            if site["value"].is_floating_point():
                latents[name] = site["value"]
    all_terms = [t for ts in terms.values() for t in ts]
    shape = torch.broadcast_shapes((K, B), *(t.shape for t in all_terms))
    num_enum = len(shape) - 2

    def total(ts, like_shape):
        out = x.new_zeros(())
        for t in ts:
            out = out + t
        if like_shape is not None:
            return out.expand(like_shape)
        return out.reshape((1,) * (len(shape) - out.dim()) + out.shape) if out.dim() else out

    return EnumTerms(total(terms["log_p"], shape), total(terms["log_obs"], shape),
                     total(terms["log_q_cont"], shape), total(terms["log_q_enum"], None), num_enum, latents)


def _sum_enum(v: torch.Tensor, n: int) -> torch.Tensor:
    return v.sum(dim=tuple(range(n))) if n else v


# ------------------------------------------------------------------------------------------------ objectives
@OBJECTIVES.register("enum", paper="Kingma, Rezende, Mohamed & Welling 2014; Pyro TraceEnum_ELBO",
                     summary="-ELBO with discrete latents summed out by parallel enumeration (+ M2's alpha term)",
                     enumerates=True)
class EnumELBO(Objective):
    name = "enum"

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = num_particles

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        elbo = self._pyro_elbo(TraceEnum_ELBO, model, strict_enumeration_warning=False)
        m, g = scale_continuous_latents(model, w), scale_continuous_latents(guide, w)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*enumerat.*")
            if torch.is_grad_enabled():
                bound = elbo.differentiable_loss(m, g, x, y)
            else:  # TraceEnum_ELBO refuses differentiable_loss without autograd (validation)
                bound = x.new_tensor(elbo.loss(m, g, x, y))
        return bound + auxiliary_loss(model, guide, x, y)


@OBJECTIVES.register("iwae-enum", arg="K", paper="Burda et al. 2016 inside, exact sum over y outside",
                     summary="-sum_y q(y|x)[log mean_k p(x,y,z_k)/q(z_k|x,y) - log q(y|x)] (+ M2's alpha term)",
                     enumerates=True)
class IWAEEnum(Objective):
    def __init__(self, num_particles: int = 5):
        super().__init__()
        self.num_particles = num_particles
        self.name = f"iwae-enum:{num_particles}"

    def bound(self, model, guide, x, y=None) -> torch.Tensor:
        """The per-point bound (B,) in the order of :func:`split_by_label`'s parts (labelled first)."""
        w = self.kl_weight
        out = []
        for xp, yp in split_by_label(x, y):
            t = enumerated_terms(scale_continuous_latents(model, w), scale_continuous_latents(guide, w), xp, yp,
                                 self.num_particles)
            n = t.num_enum_dims
            inner = log_mean_exp(t.log_p - t.log_q_cont, dim=n)  # (E..., B)
            if n == 0:
                out.append(inner)
                continue
            log_q = t.log_q_enum
            if log_q.dim() > n and log_q.shape[n] != 1:
                raise NotImplementedError("iwae-enum needs q(y|x) not to depend on the sampled latents")
            log_q = log_q.squeeze(n) if log_q.dim() > n else log_q
            log_q = log_q.expand(inner.shape)
            out.append(_sum_enum(log_q.exp() * (inner - log_q), n))
        return torch.cat(out)

    def loss(self, model, guide, x, y=None):
        return -self.bound(model, guide, x, y).sum() + auxiliary_loss(model, guide, x, y)


# ------------------------------------------------------------------------------------------------ evaluation
class EnumWeightTerms(NamedTuple):
    """What :func:`inference.evaluation.importance_sample` reads, for a model with enumerated latents.

    ``log_w`` (K, B) = log sum_y p(x, y, z_ky) / q(z_ky | x, y): y summed inside, so logsumexp_k log_w - log K estimates
    log p(x) with y marginalised. ``log_obs``, ``log_prior``, ``log_q`` are expectations over q(y|x) (per particle),
    with log q(y|x) in ``log_q`` and log p(y) in ``log_prior``, so ``elbo`` = log_obs + log_prior - log_q is the ELBO
    that ``enum`` optimises. ``latents`` holds the continuous latents averaged over q(y|x) (for active units)."""
    log_w: torch.Tensor
    log_obs: torch.Tensor
    log_prior: torch.Tensor
    log_q: torch.Tensor
    latents: dict

    @property
    def elbo(self):
        return self.log_obs + self.log_prior - self.log_q


def enumerated_weight_terms(model, guide, x, y=None, num_particles: int = 1, max_plate_nesting=None) -> EnumWeightTerms:
    """Per-(particle, point) terms with the discrete latents marginalised; labels, if given, are ignored (the
    evaluation estimates log p(x), not log p(x, y))."""
    t = enumerated_terms(model, guide, x, None, num_particles)
    n = t.num_enum_dims
    log_w = t.log_p - t.log_q_cont
    if n == 0:
        return EnumWeightTerms(log_w, t.log_obs, t.log_p - t.log_obs, t.log_q_cont, t.latents)
    q = t.log_q_enum.exp().expand(log_w.shape)
    log_q_full = t.log_q_cont + t.log_q_enum
    latents = {}
    for name, v in t.latents.items():  # (E..., K, B, D) -> q-weighted mean over the enumerated values
        qv = q.reshape(q.shape + (1,) * (v.dim() - q.dim()))
        latents[name] = _sum_enum(qv * v.expand(q.shape + v.shape[q.dim():]), n)
    return EnumWeightTerms(torch.logsumexp(log_w, dim=tuple(range(n))), _sum_enum(q * t.log_obs, n),
                           _sum_enum(q * (t.log_p - t.log_obs), n), _sum_enum(q * log_q_full, n), latents)


def weight_terms_for(model):
    """The weight-term function of the evaluation protocol suited to ``model``."""
    if has_enumerated_latents(model):
        return enumerated_weight_terms
    from inference.importance import weight_terms

    return weight_terms
