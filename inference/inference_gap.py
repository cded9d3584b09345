r"""
The inference gap split into its approximation and amortization parts (Cremer, Li & Duvenaud 2018), for any zoo model
and any guide whose per-point parameters the zoo can set free.

For a data point :math:`x` and a guide family :math:`\mathcal{Q}`, the gap between the log-likelihood and the
amortized bound splits as

    :math:`\log p(x) - \mathcal{L}[q_\phi] = \underbrace{\log p(x) - \mathcal{L}[q^*]}_{\text{approximation gap}}
    + \underbrace{\mathcal{L}[q^*] - \mathcal{L}[q_\phi]}_{\text{amortization gap}}`,

    :math:`\mathcal{L}[q] = \mathbb{E}_{q(z)}[\log p(x, z) - \log q(z)] = \log p(x) - \mathrm{KL}(q(z) \| p(z|x))`,

where :math:`q_\phi(z|x)` is the amortized guide (its parameters emitted by the encoder from :math:`x`) and
:math:`q^* = \arg\max_{q \in \mathcal{Q}} \mathcal{L}[q]` the best member of the same family for this one point,
found by local (per-point, non-amortized) variational inference. The approximation gap
:math:`\mathrm{KL}(q^* \| p(z|x)) \ge 0` is the price of the family; the amortization gap :math:`\ge 0` the price of
sharing one encoder over all points. Both are estimates here: :math:`q^*` is what a fixed optimiser budget reaches
(an under-fitted :math:`q^*` moves nats from the amortization gap to the approximation gap), and :math:`\log p(x)` is
the evaluation's importance-sampled estimate (or AIS's when the evaluation ran it), itself a stochastic lower bound,
so the approximation gap is, if anything, underestimated.

**The local q** (``family="guide"``). Every parameter of an amortized zoo guide is emitted per point by a head on the
encoder's context (:meth:`guides.base.AmortizedGuide.local_parameter_heads`: the diagonal Gaussian's (loc, scale
before the softplus), each flow step's hypernetwork output; for IAF, whose context enters the MADE, its first
layer's output, a per-point bias of the first hidden layer with the MADE's weights shared). The local q adds a free
tensor :math:`\delta_i` to each head's output for each point :math:`i` (forward hooks on those modules, for as long
as the fit runs), so the guide's own program, masks and transforms run unchanged:

    :math:`\theta_i = \mathrm{head}(h(x_i)) + \delta_i`,    :math:`\delta_i = 0` at the start,

i.e. the per-point parameters are free, initialised at the encoder's output (as in Cremer et al.'s code). For a site
the guide conditions on other latents (hierarchies: :math:`q(z_1 | x, z_2)`), :math:`\delta_i` frees the part that
depends on :math:`x` (for a linear head exactly a free per-point intercept), and the dependence on the parents keeps
the trained weights. Nothing else is trained: the model, the encoder and the heads stay fixed.

**The full-covariance local q** (``family="full-covariance"``). One Gaussian per point over all the latent sites'
unconstrained values jointly, :math:`u = m_i + L_i \epsilon`, :math:`L_i` lower triangular with a positive diagonal
(log-parameterised), pushed to each site's support as the guides do (log-det included); started at the mean and
covariance of 256 draws of the amortized q (plus :math:`10^{-4} I`). Its log-density is computed from the noise,
:math:`\log r = -\tfrac12 \|\epsilon\|^2 - \sum \log \mathrm{diag}\, L_i - \tfrac{D}{2} \log 2\pi` (no triangular
solve in the value, as in :mod:`inference.fitted_proposal`, so round-off cannot be optimised; the path-derivative
gradient below solves with the detached factor). When the posterior is Gaussian (a linear-Gaussian model) it is in
this family and the approximation gap is 0.

**The fit.** Adam (``lr``, decaying linearly to 0 so the last iterate does not jitter with the few-draw gradients)
for ``steps`` steps on the Monte Carlo ELBO with ``particles`` reparameterised draws a step, the points of a batch
in parallel (the loss is the sum of the points' ELBOs, so each point's parameters get their own gradient and Adam's
step is per coordinate). The gradient is the path derivative (Roeder, Wu & Duvenaud 2017: the score term of
:math:`\log q` dropped, unbiased, and of zero variance once q is the posterior, which is what lets the
full-covariance fit land on it) wherever :math:`\log q` at a fixed z is closed-form; for a guide that samples a
transformed distribution (a flow, or a latent pushed to a constrained support) it is the ordinary reparameterisation
gradient (a flow's path derivative needs a Jacobian per latent dimension: 3x the time on mnist5k for 0.05 nats).
Gradients are taken with respect to the free tensors only (``torch.autograd.grad``: no gradient is accumulated on
the model or the guide). A point whose parameters or final ELBO are not finite keeps its start (counted as
``points_reset``). Then :math:`\mathcal{L}[q^*]` (and :math:`\mathcal{L}` of the start, a check: for
``family="guide"`` it is the amortized ELBO) is estimated with ``eval_particles`` draws per point.

Cost: ``points x steps x particles`` draws through the guide and the model, forward and backward, plus
``points x eval_particles`` forward. Measured on one CPU thread (a shared 2-core machine), mnist5k, vae (z 20, hidden
400), 50 test points, the defaults (500 steps of 16 draws): diagonal guide 20 s, iaf:2 29 s, full covariance 20 s,
i.e. about 0.4-0.6 s a point (300 and 1000 steps gave the diagonal guide the same ELBO(q*) to 0.01 nats). Hence
the CLI's ``--inference-gap N`` fits a subset of N points.

What the numbers say (mnist5k, vae z 20 hidden 400 trained 10 epochs, the first 50 test points, default settings;
nats, mean ± se over points): with log p(x) from AIS (T = 1000, 16 chains: -143.10), the diagonal guide's
approximation gap is 3.44 ± 0.07 and its amortization gap 6.06 ± 0.39; a full-covariance local q closes all but
0.15 ± 0.02 of the approximation gap (amortization gap 9.35 ± 0.40 against it). The importance-sampled log p(x) from
the guide with K = 5000 (-144.50, k-hat > 0.7 at every point) is 1.4 nats low: with it the diagonal approximation gap
reads 2.04 and the full-covariance one -1.25 (ELBO(q*) above log p(x) at 47 of 50 points, which eval.json flags). So
read a small approximation gap with log p(x) from ``--estimator ais:T`` (used here whenever the evaluation ran it).
An iaf:2 guide on the same data (10 epochs, IS K = 5000): approximation gap 0.75 ± 0.13, amortization gap
4.73 ± 0.24.

Guides refused, in one line (:class:`~zoo.errors.ConfigError`): an implicit or deterministic guide (no density
:math:`\log q(z|x)`, so no amortized ELBO to split), a user's Pyro function guide or any guide that does not name
its per-point parameter heads, a guide with an enumerated discrete latent, and a model without latent variables.

References:

[1] Chris Cremer, Xuechen Li, David Duvenaud. Inference Suboptimality in Variational Autoencoders. ICML 2018.
[arXiv:1801.03558]
"""
import math
import time
from typing import Dict, Optional

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn
from torch.distributions.utils import _sum_rightmost

from inference.evaluation import CHUNK_FLOATS, CHUNK_FLOATS_GPU, _chunk_sizes, mean_se
from inference.importance import weight_terms
from inference.path_gradients import _flow_transforms, path_terms
from zoo.errors import ConfigError
from zoo.model import data_plate

FAMILIES = ("guide", "full-covariance")
DEFAULTS = {"steps": 500, "particles": 16, "lr": 0.02, "eval_particles": 1000}
MOMENT_DRAWS = 256  # draws of the amortized q whose mean and covariance start the full-covariance fit
RIDGE = 1e-4
PATH = "path derivative (Roeder, Wu & Duvenaud 2017)"
REPARAMETERISED = "reparameterisation gradient (a transformed q's path derivative would need its Jacobian)"


def _guide_name(guide) -> str:
    return getattr(guide, "_name", None) or type(guide).__name__


def check_supported(model, guide, family: str = "guide"):
    """Refuse, in one line, what the local fit cannot do: see the module docstring. Returns the per-point parameter
    heads for ``family="guide"`` (None for the full-covariance family)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown inference-gap family {family!r}; choose one of {', '.join(FAMILIES)}")
    name = _guide_name(guide)
    sites = model.latent_sites() if hasattr(model, "latent_sites") else None
    if sites is not None and not sites:
        raise ConfigError("the model has no latent variables, so there is no inference gap: its log p(x) is exact")
    if getattr(guide, "implicit", False):
        raise ConfigError(f"guide {name} is implicit (a sampler or point mass without a density log q(z|x)), so it has "
                          f"no amortized ELBO to split into approximation and amortization gaps; use a guide with a "
                          f"density (diagonal, a flow)")
    heads_of = getattr(guide, "local_parameter_heads", None)
    if not callable(heads_of):
        raise ConfigError(f"guide {name} does not say which of its outputs are q's per-point parameters (a user's Pyro "
                          f"function or another guide outside guides.base.AmortizedGuide), so no local q of its family "
                          f"can be fitted; use a zoo guide (diagonal, a flow) or give it local_parameter_heads()")
    discrete = [s.name for s in (sites or []) if getattr(s, "support", "real") == "categorical"]
    if discrete:
        raise ConfigError(f"the model's latent {discrete[0]!r} is discrete: the local fit follows reparameterised "
                          f"gradients of continuous latents only")
    if family == "full-covariance":
        bad = [s for s in guide.sites if s.support != "real"]
        if bad:
            raise ConfigError(f"a full-covariance Gaussian cannot represent the latent {bad[0].name!r} of support "
                              f"{bad[0].support}; use --inference-gap-family guide")
        if getattr(guide, "_site_steps", None):
            raise ConfigError("the full-covariance local q does not mask padded sequence steps; use "
                              "--inference-gap-family guide for sequence models")
        return None
    heads = heads_of()
    if not heads:
        raise ConfigError(f"guide {name} has no per-point parameter heads the local fit can set free (its q is not "
                          f"parameterised by per-point outputs of the encoder); use diagonal or a flow guide")
    return heads


# ---------------------------------------------------------------------------------------------- the guide's family
class FreeOffsets:
    """While entered, each head's output gets a free per-point tensor added (forward hooks): see the module docstring.
    :meth:`start` runs the guide once on the batch to learn each head's width and makes the tensors (zeros)."""

    def __init__(self, heads: Dict[str, nn.Module]):
        self.heads = dict(heads)
        self.offsets: Optional[Dict[str, torch.Tensor]] = None
        self._widths, self._batch, self._handles = {}, None, []

    def _hook(self, name):
        def add(module, inputs, output):
            if self.offsets is None:  # the dry run: one row per data point along dim -2
                if not torch.is_tensor(output) or output.dim() < 2 or output.shape[-2] != self._batch:
                    shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
                    raise ConfigError(f"the guide's parameter head {name!r} returned {shape}, not one row per data "
                                      f"point (batch {self._batch}) along dim -2, so it cannot be freed per point")
                self._widths[name] = (output.shape[-1], output.dtype, output.device)
                return None
            return output + self.offsets[name].to(output.dtype)

        return add

    def __enter__(self):
        for name, module in self.heads.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def start(self, guide, x, y=None):
        self._batch, self.offsets, self._widths = x.shape[0], None, {}
        with torch.no_grad():
            guide(x, y)
        missing = [n for n in self.heads if n not in self._widths]
        if missing:
            raise ConfigError(f"the guide's parameter head {missing[0]!r} was not used when the guide ran, so it does "
                              f"not parameterise q; the guide's local_parameter_heads() names the wrong modules")
        self.offsets = {n: torch.zeros((self._batch, w), dtype=dt, device=dev).requires_grad_(True)
                        for n, (w, dt, dev) in self._widths.items()}
        return list(self.offsets.values())


class _GuideFamily:
    """The local q of the guide's own family for a batch: the guide with free offsets on its heads."""

    def __init__(self, model, guide, heads, x, y):
        self.model, self.guide, self.x, self.y = model, guide, x, y
        self.free = FreeOffsets(heads)

    def __enter__(self):
        self.free.__enter__()
        try:
            self.params = self.free.start(self.guide, self.x, self.y)
            with torch.no_grad():
                trace = poutine.trace(self.guide).get_trace(self.x, self.y)
        except BaseException:  # no hook is left on the guide
            self.free.__exit__()
            raise
        # the path derivative where log q at a fixed z is closed-form; a flow's needs a Jacobian per latent dimension
        self.path = not any(_flow_transforms(site["fn"]) is not None for site in trace.nodes.values()
                            if site["type"] == "sample" and not site["is_observed"])
        return self

    def __exit__(self, *exc):
        return self.free.__exit__(*exc)

    def elbo(self, k: int) -> torch.Tensor:
        """(k, B) log w = log p(x, z) - log q(z) at k draws of the local q per point."""
        return weight_terms(self.model, self.guide, self.x, self.y, k).log_w

    def surrogate(self, k: int) -> torch.Tensor:
        """(k, B): the value of log w; its gradient the path derivative (the score term of log q dropped), or for a
        guide that samples transformed distributions the ordinary reparameterised gradient."""
        if not self.path:
            return self.elbo(k)
        t = path_terms(self.model, self.guide, self.x, self.y, k, objective="the inference gap's local fit")
        return t.log_w + t.score

    def finite(self) -> torch.Tensor:
        ok = torch.ones(self.x.shape[0], dtype=torch.bool, device=self.x.device)
        for p in self.params:
            ok &= torch.isfinite(p).all(-1)
        return ok

    def reset(self, bad: torch.Tensor):
        with torch.no_grad():
            for p in self.params:
                p[bad] = 0.0


# ------------------------------------------------------------------------------------- the full-covariance family
class _FullCovariance:
    """One Gaussian per point over all sites' unconstrained values jointly (module docstring)."""

    def __init__(self, model, guide, x, y):
        self.model, self.guide, self.x, self.y = model, guide, x, y
        self.sites = list(guide.sites)
        self.dims = [s.dim for s in self.sites]

    def __enter__(self):
        with torch.no_grad():
            latents = weight_terms(self.model, self.guide, self.x, self.y, MOMENT_DRAWS).latents
            us = []
            for site in self.sites:
                u = latents[site.name]
                for t in reversed(self.guide._to_model[site.name]):
                    u = t.inv(u)
                us.append(u.reshape(MOMENT_DRAWS, self.x.shape[0], -1).float())
            u = torch.cat(us, -1)  # (S, B, D)
            mean = u.mean(0)
            centred = (u - mean).transpose(0, 1)  # (B, S, D)
            cov = centred.transpose(-1, -2) @ centred / (MOMENT_DRAWS - 1)
            cov = cov + RIDGE * torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
            tril = torch.linalg.cholesky(cov)
        self.start = (mean, tril)
        self.params = [mean.clone().requires_grad_(True),
                       tril.diagonal(dim1=-2, dim2=-1).log().clone().requires_grad_(True),
                       tril.tril(-1).clone().requires_grad_(True)]
        return self

    def __exit__(self, *exc):
        return False

    def _factor(self):
        mean, log_d, off = self.params
        return mean, torch.diag_embed(log_d.exp()) + off.tril(-1), log_d

    def elbo(self, k: int, path: bool = False) -> torch.Tensor:
        mean, tril, log_d = self._factor()
        eps = torch.randn((k,) + mean.shape, dtype=mean.dtype, device=mean.device)
        u = mean + (tril @ eps.unsqueeze(-1)).squeeze(-1)
        log_r = -0.5 * eps.pow(2).sum(-1) - log_d.sum(-1) - 0.5 * mean.shape[-1] * math.log(2 * math.pi)
        if path:  # the gradient through u alone: log r at u under detached parameters (its value stays the noise's)
            e = torch.linalg.solve_triangular(tril.detach(), (u - mean.detach()).unsqueeze(-1), upper=False)
            through_u = -0.5 * e.squeeze(-1).pow(2).sum(-1)
            log_r = log_r.detach() + (through_u - through_u.detach())
        values = {}
        for site, part in zip(self.sites, u.split(self.dims, dim=-1)):
            v = part
            transforms = self.guide._to_model[site.name]
            chain = []
            for t in transforms:
                w = t(v)
                chain.append((t, v, w))
                v = w
            if not transforms:
                v = v.reshape(v.shape[:2] + tuple(site.value_shape))
            event_dim = len(site.value_shape)
            for t, a, b in reversed(chain):  # as TransformedDistribution.log_prob sums them
                event_dim += t.domain.event_dim - t.codomain.event_dim
                log_r = log_r - _sum_rightmost(t.log_abs_det_jacobian(a, b), event_dim - t.domain.event_dim)
            values[site.name] = v

        def point_masses(xb, yb=None):
            with data_plate(xb):
                for site in self.sites:
                    pyro.sample(site.name, dist.Delta(values[site.name], event_dim=len(site.value_shape)))

        t = weight_terms(self.model, point_masses, self.x, self.y, k, max_plate_nesting=self.model.max_plate_nesting)
        return t.log_obs + t.log_prior - log_r

    def surrogate(self, k: int) -> torch.Tensor:
        return self.elbo(k, path=True)

    def finite(self) -> torch.Tensor:
        ok = torch.ones(self.x.shape[0], dtype=torch.bool, device=self.x.device)
        for p in self.params:
            ok &= torch.isfinite(p).flatten(1).all(-1)
        return ok

    def reset(self, bad: torch.Tensor):
        mean, tril = self.start
        with torch.no_grad():
            self.params[0][bad] = mean[bad]
            self.params[1][bad] = tril.diagonal(dim1=-2, dim2=-1).log()[bad]
            self.params[2][bad] = tril.tril(-1)[bad]


# ------------------------------------------------------------------------------------------------------- fitting
def _estimate(local, total: int, chunk: int) -> torch.Tensor:
    """The ELBO per point, (B,), from ``total`` draws in chunks of at most ``chunk``, float64."""
    s, done = 0.0, 0
    with torch.no_grad():
        while done < total:
            k = min(chunk, total - done)
            s = s + local.elbo(k).double().sum(0)
            done += k
    return s / total


def _optimise(local, steps: int, particles: int, lr: float, progress=None):
    if steps <= 0:
        return
    optimizer = torch.optim.Adam(local.params, lr=lr)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    with torch.enable_grad():
        for _ in range(steps):
            loss = -local.surrogate(particles).mean(0).sum()  # a sum over points: each point's own gradient
            grads = torch.autograd.grad(loss, local.params)
            for p, g in zip(local.params, grads):
                p.grad = g
            optimizer.step()
            decay.step()
            if progress is not None:
                progress.update(local.x.shape[0])


def local_elbos(model, guide, x, y=None, family: str = "guide", steps: int = DEFAULTS["steps"],
                particles: int = DEFAULTS["particles"], lr: float = DEFAULTS["lr"],
                eval_particles: int = DEFAULTS["eval_particles"], batch_size: int = 100, progress=None) -> dict:
    """Fit a local q per point of ``x`` (module docstring) and return per-point numpy arrays: ``elbo_local`` (the ELBO
    of the fitted q*), ``elbo_initial`` (of its start; for ``family="guide"`` the amortized q) and ``reset`` (the
    points whose fit was not finite and kept the start), and ``gradient``, the gradient estimator used (in words)."""
    for label, value in (("steps", steps), ("particles", particles), ("eval_particles", eval_particles)):
        if int(value) != value or value < (0 if label == "steps" else 1):
            raise ConfigError(f"inference gap: {label} must be a {'non-negative' if label == 'steps' else 'positive'} "
                              f"integer, got {value}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"inference gap: the learning rate must be a positive number, got {lr}")
    heads = check_supported(model, guide, family)
    budget = CHUNK_FLOATS if x.device.type == "cpu" else CHUNK_FLOATS_GPU
    out, gradient = {"elbo_local": [], "elbo_initial": [], "reset": []}, PATH
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        yb = None if y is None else y[start:start + batch_size]
        chunk = _chunk_sizes(xb.shape[0], eval_particles, x.shape[1], budget)
        local = (_GuideFamily(model, guide, heads, xb, yb) if family == "guide"
                 else _FullCovariance(model, guide, xb, yb))
        with local:
            if not getattr(local, "path", True):
                gradient = REPARAMETERISED
            initial = _estimate(local, eval_particles, chunk)
            _optimise(local, int(steps), int(particles), float(lr), progress)
            bad = ~local.finite()
            if bool(bad.any()):
                local.reset(bad)
            final = _estimate(local, eval_particles, chunk)
            worse = ~torch.isfinite(final)
            if bool(worse.any()):
                local.reset(worse)
                final = torch.where(worse, initial, final)
                bad = bad | worse
        out["elbo_local"].append(final.cpu())
        out["elbo_initial"].append(initial.cpu())
        out["reset"].append(bad.cpu())
    return {**{k: torch.cat(v).numpy() for k, v in out.items()}, "gradient": gradient}


def split_gap(log_px, elbo_local, elbo_amortized) -> dict:
    """Per-point approximation gap log p(x) - ELBO(q*) and amortization gap ELBO(q*) - ELBO(q_amortized), and their
    means with standard errors over the points."""
    log_px, elbo_local, elbo_amortized = (np.asarray(v, dtype=np.float64) for v in (log_px, elbo_local, elbo_amortized))
    approximation, amortization = log_px - elbo_local, elbo_local - elbo_amortized
    return {"log_px": mean_se(log_px), "elbo_local": mean_se(elbo_local), "elbo_amortized": mean_se(elbo_amortized),
            "approximation_gap": mean_se(approximation), "amortization_gap": mean_se(amortization),
            "per_point": {"approximation_gap": approximation, "amortization_gap": amortization}}


def evaluate_inference_gap(model, guide, x, y, log_px, elbo_amortized, points: int, family: str = "guide",
                           log_px_estimator: str = "", batch_size: int = 100, progress=None, **fit) -> tuple:
    """The inference gap on the first ``points`` points of ``x`` (all of them when fewer): eval.json's
    ``inference_gap`` and the per-point arrays (for eval_points.pt). ``log_px`` and ``elbo_amortized`` are the
    evaluation's per-point values for all of ``x``; ``fit``: :func:`local_elbos`'s steps, particles, lr,
    eval_particles."""
    n = min(int(points), x.shape[0])
    if n < 1:
        raise ConfigError(f"--inference-gap takes a positive number of points, got {points}")
    settings = {**DEFAULTS, **{k: v for k, v in fit.items() if v is not None}}
    t0 = time.perf_counter()
    fitted = local_elbos(model, guide, x[:n], None if y is None else y[:n], family, batch_size=batch_size,
                         progress=progress, **settings)
    gaps = split_gap(np.asarray(log_px)[:n], fitted["elbo_local"], np.asarray(elbo_amortized)[:n])
    per_point = gaps.pop("per_point")
    what = ("the guide's own family, its per-point parameters (every head's output) free, started at the encoder's "
            "output" if family == "guide" else
            "a full-covariance Gaussian over all latents' unconstrained values, started at the moments of "
            f"{MOMENT_DRAWS} draws of the amortized q")
    part = {"points": n, "steps": settings["steps"], "family": family, **gaps,
            "elbo_initial": mean_se(fitted["elbo_initial"]), "points_reset": int(fitted["reset"].sum()),
            "particles": settings["particles"], "lr": settings["lr"], "eval_particles": settings["eval_particles"],
            "log_px_estimator": log_px_estimator,
            "gradient": fitted["gradient"],
            "protocol": (f"local q per point: {what}; Adam (lr {settings['lr']:g} decaying linearly to 0), "
                         f"{settings['steps']} steps on the ELBO with {settings['particles']} reparameterised draws "
                         f"({fitted['gradient']}), "
                         f"ELBO(q*) from {settings['eval_particles']} draws; approximation gap = log p(x) - ELBO(q*), "
                         f"amortization gap = ELBO(q*) - ELBO(q_amortized) (Cremer, Li & Duvenaud 2018)"),
            "seconds": time.perf_counter() - t0}
    below = int((per_point["approximation_gap"] < 0).sum())
    part["points_log_px_below_elbo_local"] = below
    if below:  # an ELBO is a lower bound of log p(x): the log p(x) estimate is too low at these points
        part["note"] = (f"at {below} of {n} points the fitted ELBO(q*) exceeds the estimate of log p(x), which is "
                        f"therefore too low there (the estimate has not converged); the approximation gap is "
                        f"underestimated: evaluate with more samples or --estimator ais:T")
    arrays = {"inference_gap_elbo_local": fitted["elbo_local"], "inference_gap_approximation": per_point[
        "approximation_gap"], "inference_gap_amortization": per_point["amortization_gap"]}
    return part, arrays
