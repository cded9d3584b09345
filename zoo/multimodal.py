"""The multimodal contract and the multimodal VAE (Wu & Goodman 2018, "Multimodal Generative Models for Scalable
Weakly-Supervised Learning").

Data (:mod:`zoo.data.multimodal`): a point holds M named modalities x_1..x_M, each flattened and concatenated in order
into one row x = [x_1, ..., x_M] of dimension D_1 + ... + D_M, so the zoo's (N, D) splits, mini-batches, DDP shards and
importance sampling work unchanged. ``Dataset.modalities`` lists the :class:`Modality` of each slice (name, dimension,
image shape or None, kind: ``continuous`` or ``categorical`` one-hot). A modality missing from a point is NaN over its
whole slice: :func:`presence` reads the (..., M) availability mask from any mini-batch, and every model and guide of
the family scores and conditions on the present modalities only. Missing modalities at training and at test time go
through that one path: a marginal log p(x_m) is the joint machinery run on x with the other slices set to NaN
(:func:`keep_only`).

Model ``mvae``::

    z ~ N(0, I)
    x_m | z ~ p_m(x_m | f_m(z))    for each present modality m  (Bernoulli or Gaussian on images/vectors, Categorical
                                                                  on a one-hot label modality)

with one decoder MLP f_m per modality. The observed site is the zoo's ``"x"``: one :class:`MultimodalObservation`
whose log-density is the sum of the present modalities' terms (a missing modality contributes exactly 0, its NaN never
reaching a log-density or a gradient), so ELBO, IWAE, the importance-sampled NLL and every other objective see
log p(x_present | z) with no new signature. Guides: ``poe`` (product of Gaussian experts with the prior expert, the
paper's) and ``moe`` (mixture of experts, Shi et al. 2019), in guides/multimodal.py; objective ``mvae-subsampled``
(the paper's sub-sampled training) in inference/multimodal.py.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from zoo.errors import ConfigError, DataError
from zoo.latents import LatentSite
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.mlp import MLP
from zoo.networks.precision import full_precision

KINDS = ("continuous", "categorical")


class Modality(NamedTuple):
    """One slice of a multimodal row: ``name``, its flattened dimension, its image shape (C, H, W) or None, and its
    kind (``continuous``: grey levels or real values, binarizable; ``categorical``: a one-hot vector)."""
    name: str
    dim: int
    shape: Optional[Tuple[int, ...]] = None
    kind: str = "continuous"


def as_modalities(spec) -> Tuple[Modality, ...]:
    """A tuple of :class:`Modality` from Modality objects or plain tuples/lists (config.json round trips)."""
    out = []
    for m in spec:
        m = Modality(*m) if not isinstance(m, Modality) else m
        out.append(Modality(str(m.name), int(m.dim), None if m.shape is None else tuple(int(s) for s in m.shape),
                            str(m.kind)))
    return tuple(out)


def slices(modalities: Sequence[Modality]) -> List[slice]:
    """The slice of x that each modality occupies."""
    out, start = [], 0
    for m in modalities:
        out.append(slice(start, start + m.dim))
        start += m.dim
    return out


def split(x: torch.Tensor, modalities: Sequence[Modality]) -> List[torch.Tensor]:
    """The modalities' parts (..., D_m) of rows x (..., D)."""
    return [x[..., s] for s in slices(modalities)]


def presence(x: torch.Tensor, modalities: Sequence[Modality]) -> torch.Tensor:
    """(..., M) bool: True where modality m of a row is present (finite), False where it is missing (NaN)."""
    return torch.stack([torch.isfinite(part).all(-1) for part in split(x, modalities)], dim=-1)


def filled(part: torch.Tensor) -> torch.Tensor:
    """A modality's values with the NaN of a missing modality set to 0 (what networks read; never scored)."""
    return torch.where(torch.isfinite(part), part, torch.zeros((), dtype=part.dtype, device=part.device))


def keep_only(x: torch.Tensor, modalities: Sequence[Modality], keep, rows: Optional[torch.Tensor] = None):
    """x with every modality not in ``keep`` (names or indices) set to NaN (missing); ``rows`` (bool (N,)) limits it to
    those rows, and the rows outside it lose every modality."""
    names = [m.name for m in modalities]
    keep = {names.index(k) if isinstance(k, str) else int(k) for k in keep}
    out = x.clone()
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    for i, s in enumerate(slices(modalities)):
        if i not in keep:
            out[..., s] = nan
    if rows is not None:
        out = torch.where(rows.unsqueeze(-1), out, nan)
    return out


def check_multimodal(x: torch.Tensor, modalities: Sequence[Modality], where: str = "the data"):
    """One :class:`DataError` line for rows the masks cannot describe: a modality partly NaN, a modality missing from
    every point, a point with no modality, a categorical modality that is not one-hot, non-finite values."""
    names = [m.name for m in modalities]
    total = sum(m.dim for m in modalities)
    if x.dim() != 2 or x.shape[1] != total:
        raise DataError(f"{where} has shape {tuple(x.shape)}, but the modalities {', '.join(names)} need (N, {total})")
    if x.shape[0] == 0:
        return
    for m, part in zip(modalities, split(x, modalities)):
        nan = torch.isnan(part)
        partial = nan.any(-1) & ~nan.all(-1)
        if bool(partial.any()):
            raise DataError(f"{where}: modality {m.name!r} is partly NaN in {int(partial.sum())} point(s); a modality is "
                            f"all values or all NaN (missing)")
        if bool(torch.isinf(part).any()):
            raise DataError(f"{where}: modality {m.name!r} contains infinite values")
        present = ~nan.all(-1)
        if not bool(present.any()):
            raise DataError(f"{where}: modality {m.name!r} is missing from every point, so nothing could learn it; "
                            f"drop it from the data or give it values for some points")
        if m.kind == "categorical":
            v = part[present]
            if not bool((((v == 0) | (v == 1)).all(-1) & (v.sum(-1) == 1)).all()):
                raise DataError(f"{where}: the categorical modality {m.name!r} must be one-hot (one 1, the rest 0)")
    none = ~presence(x, modalities).any(-1)
    if bool(none.any()):
        raise DataError(f"{where}: {int(none.sum())} point(s) have no modality at all (every slice NaN); drop them")


# ------------------------------------------------------------------------------------------- observation model
class CategoricalOneHot(nn.Module):
    """p(x | z) = Categorical(softmax(f(z))) on a one-hot vector x: log p = sum_k x_k log softmax(f(z))_k."""

    params_per_dim = 1
    is_discrete = True

    def forward(self, out):
        return dist.OneHotCategorical(logits=full_precision(out), validate_args=False)

    def mean(self, out):
        return torch.softmax(out, -1)


class MultimodalObservation(TorchDistribution):
    """The joint p(x_1, ..., x_M | z) of the concatenated row, each modality scored only where it is present.

    ``parts`` are the modalities' distributions (event shape (D_m,), batch shapes broadcastable); ``log_prob(x)`` is
    sum_m [x_m present] log p_m(x_m) with a missing modality's NaN replaced before scoring, so it contributes exactly 0
    to the value and to every gradient. ``mean`` and ``sample`` concatenate the parts' (a categorical part gives its
    probabilities as mean and a one-hot draw as sample)."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, parts, modalities, validate_args=None):
        self.parts = list(parts)
        self.modalities = tuple(modalities)
        batch_shape = torch.broadcast_shapes(*(p.batch_shape for p in self.parts))
        event_shape = torch.Size([sum(m.dim for m in self.modalities)])
        super().__init__(batch_shape, event_shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return MultimodalObservation([p.expand(batch_shape) for p in self.parts], self.modalities)

    def log_prob(self, value):
        total = None
        for p, part in zip(self.parts, split(value, self.modalities)):
            present = torch.isfinite(part).all(-1)
            lp = p.log_prob(filled(part))
            lp = torch.where(present, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
            total = lp if total is None else total + lp
        return total

    def modality_log_probs(self, value) -> torch.Tensor:
        """(..., M) the present modalities' log-densities (0 where missing)."""
        out = []
        for p, part in zip(self.parts, split(value, self.modalities)):
            lp = p.log_prob(filled(part))
            out.append(torch.where(torch.isfinite(part).all(-1), lp, torch.zeros((), dtype=lp.dtype, device=lp.device)))
        return torch.stack(out, -1)

    @property
    def mean(self):
        shape = self.batch_shape
        return torch.cat([_mean(p).expand(shape + p.event_shape) for p in self.parts], -1)

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        return torch.cat([p.sample(sample_shape).to(torch.get_default_dtype()).expand(shape + p.event_shape)
                          for p in self.parts], -1)


def _mean(p):
    if isinstance(p, dist.OneHotCategorical):
        return p.probs
    return p.mean


# ------------------------------------------------------------------------------------------- the model
@MODELS.register("mvae", paper="Wu & Goodman 2018 (MVAE); Shi, Siddharth, Paige & Torr 2019 (MMVAE guide)",
                 summary="multimodal VAE: z ~ N(0, I), x_m ~ p_m(x_m | MLP_m(z)) per present modality (one site 'x' "
                         "summing the present modalities' terms); multimodal data",
                 guide="poe", objective="mvae-subsampled", data="mnist5k-colour", binarize="none", multimodal=True,
                 latent_dim=20, hidden=(256,))
class MVAE(ZooModel):
    """The multimodal VAE's generative model; see the module docstring. Guides: ``poe`` (the paper's), ``moe``."""

    is_multimodal_model = True

    def __init__(self, data_dim: int, modalities=None, latent_dim: int = 20, hidden: Sequence[int] = (256,),
                 likelihood: str = "gaussian", sigma: float = 0.1, activation: str = "relu",
                 image_shape: Optional[Tuple[int, int, int]] = None):
        if modalities is None:
            raise ConfigError(f"model mvae is for multimodal data (several named modalities per point), but the data "
                              f"set holds plain vectors of {data_dim} values; use mnist5k-colour, mnist5k-label or an "
                              f".npz with modality_<name> arrays")
        modalities = as_modalities(modalities)
        if sum(m.dim for m in modalities) != data_dim or not modalities:
            raise ConfigError(f"model mvae: modalities {[m.name for m in modalities]} do not fit data of dimension "
                              f"{data_dim}")
        if likelihood in ("auto", None):
            likelihood = "gaussian"
        if likelihood not in ("bernoulli", "gaussian", "gaussian-learned"):
            raise ConfigError(f"mvae: --likelihood is bernoulli or gaussian for its image/vector modalities (a one-hot "
                              f"modality is always categorical), got {likelihood!r}")
        super().__init__(data_dim, image_shape)
        self.modalities = modalities
        self.latent_dim, self.hidden, self.activation = latent_dim, tuple(hidden or (256,)), activation
        self.likelihood_name = likelihood
        self.likelihoods = nn.ModuleList(
            [CategoricalOneHot() if m.kind == "categorical" else build_likelihood(likelihood, m.dim, sigma=sigma)
             for m in modalities])
        self.decoders = nn.ModuleList([MLP(latent_dim, tuple(reversed(self.hidden)), m.dim * lik.params_per_dim,
                                           act=activation) for m, lik in zip(modalities, self.likelihoods)])

    # ------------------------------------------------------------------------------------------- structure
    def latent_sites(self):
        return [LatentSite("z", self.latent_dim)]

    def make_encoder(self) -> nn.Module:
        """h(x) of a generic guide (diagonal, flows): an MLP on [x with missing modalities set to 0, presence mask]."""
        return MultimodalFlatEncoder(self.modalities, self.hidden, self.activation)

    def expert_encoder(self, index: int) -> nn.Module:
        """The feature extractor of modality ``index``'s inference network (the poe/moe experts)."""
        return MLP(self.modalities[index].dim, self.hidden, None, act=self.activation)

    def observed_is_discrete(self) -> bool:
        return all(getattr(lik, "is_discrete", False) for lik in self.likelihoods)

    # ------------------------------------------------------------------------------------------- the model
    def observation(self, z: torch.Tensor) -> MultimodalObservation:
        return MultimodalObservation([lik(dec(z)) for lik, dec in zip(self.likelihoods, self.decoders)],
                                     self.modalities)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            loc = x.new_zeros(x.shape[:-1] + (self.latent_dim,))
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc), validate_args=False).to_event(1))
            return pyro.sample("x", self.observation(z), obs=x)

    # ------------------------------------------------------------------------------------------- data
    def check_data(self, x: torch.Tensor, where: str = "the data"):
        check_multimodal(x, self.modalities, where)
        for m, lik, part in zip(self.modalities, self.likelihoods, split(x, self.modalities)):
            present = part[torch.isfinite(part).all(-1)]
            if m.kind != "categorical" and present.numel() and hasattr(lik, "check_data"):
                try:
                    lik.check_data(present, f"{where} (modality {m.name!r})")
                except DataError as e:
                    raise DataError(str(e).splitlines()[0]) from None

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, dtype=like.dtype, device=like.device)
        fn = self.observation(z)
        return fn.mean if mean else fn.sample()

    @torch.no_grad()
    def decode(self, z: torch.Tensor, index: int) -> torch.Tensor:
        """E[x_m | z] of modality ``index`` (probabilities for a categorical modality)."""
        lik, out = self.likelihoods[index], self.decoders[index](z)
        return lik.mean(out)

    def extra_repr(self):
        parts = ", ".join(f"{m.name}:{m.dim}{'(categorical)' if m.kind == 'categorical' else ''}"
                          for m in self.modalities)
        return f"modalities=[{parts}], z={self.latent_dim}, likelihood={self.likelihood_name}"


class MultimodalFlatEncoder(nn.Module):
    """h(x) for the zoo's generic amortized guides on multimodal rows: an MLP on [x with missing modalities set to 0,
    the presence mask], so ``diagonal`` and the flows also train on partly observed points."""

    def __init__(self, modalities, hidden, act="relu"):
        super().__init__()
        self.modalities = tuple(modalities)
        self.mlp = MLP(sum(m.dim for m in self.modalities) + len(self.modalities), tuple(hidden), None, act=act)
        self.out_features = self.mlp.out_features

    def forward(self, x):
        mask = presence(x, self.modalities).to(x.dtype)
        return self.mlp(torch.cat([filled(x), mask], -1))


def modalities_of(model) -> Optional[Tuple[Modality, ...]]:
    return getattr(model, "modalities", None) if getattr(model, "is_multimodal_model", False) else None

