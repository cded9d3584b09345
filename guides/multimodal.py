"""Guides of the multimodal VAE (zoo/multimodal.py): one inference network ("expert") per modality,
q_m(z | x_m) = N(mu_m(x_m), diag sigma_m(x_m)^2), combined over the modalities PRESENT in each point (the availability
mask read from the NaN slices of x, :func:`zoo.multimodal.presence`), so missing modalities at training and at test
time take the same path.

* ``poe`` -- the product of Gaussian experts with the prior expert (Wu & Goodman 2018):
  q(z | x_S) proportional to p(z) prod_{m in S} q_m(z | x_m), a Gaussian with precision T = 1 + sum_{m in S} sigma_m^-2
  and mean T^-1 sum_{m in S} sigma_m^-2 mu_m (per latent unit). With no modality present it is the prior.
* ``moe`` -- the mixture of the unimodal experts (MMVAE, Shi, Siddharth, Paige & Torr 2019):
  q(z | x_S) = (1/|S|) sum_{m in S} q_m(z | x_m), log q = logmeanexp over the present experts' log-densities. Sampling
  is stratified over the experts: draw k of a point (particle k of an ``iwae:K`` or the evaluation's K samples; k = 0
  for one draw) comes from expert (k + r) mod M with r uniform per point, an absent expert being replaced by a
  uniformly chosen present one; every draw is thus distributed as q, K = M draws use each expert once as in the paper,
  and the choice of the expert does not depend on the parameters, so the draws are reparameterised (pathwise gradients
  through mu_m + sigma_m eps). With no modality present it is the prior.
"""
import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from zoo.errors import ContractError
from zoo.model import data_plate
from zoo.multimodal import filled, presence, split
from zoo.networks.precision import full_precision

from guides.base import GUIDES

MIN_SCALE = 1e-5


class ExpertsGuide(nn.Module):
    """The unimodal experts of a multimodal model: :meth:`experts` gives each one's (loc, scale) and the mask."""

    guide_name = "experts"

    def __init__(self, model):
        super().__init__()
        if not getattr(model, "is_multimodal_model", False):
            name = getattr(model, "display_name", lambda: type(model).__name__)()
            raise ContractError(f"guide {self.guide_name} combines one inference network per modality, so it is for "
                                f"multimodal models (mvae), not model {name}; choose a guide such as diagonal")
        self.modalities = model.modalities
        self.latent_dim = model.latent_dim
        self.encoders = nn.ModuleList([model.expert_encoder(i) for i in range(len(self.modalities))])
        self.heads = nn.ModuleList([nn.Linear(e.out_features, 2 * self.latent_dim) for e in self.encoders])

    def experts(self, x: torch.Tensor):
        """(loc (..., M, k), scale (..., M, k), present (..., M)) of the experts q_m(z | x_m) of rows x."""
        locs, scales = [], []
        for enc, head, part in zip(self.encoders, self.heads, split(x, self.modalities)):
            loc, raw = full_precision(head(enc(filled(part)))).chunk(2, dim=-1)
            locs.append(loc)
            scales.append(F.softplus(raw) + MIN_SCALE)
        return torch.stack(locs, -2), torch.stack(scales, -2), presence(x, self.modalities)

    def posterior(self, x: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y=None):
        fn = self.posterior(x)
        with data_plate(x):
            return pyro.sample("z", fn)


def product_of_experts(loc: torch.Tensor, scale: torch.Tensor, present: torch.Tensor):
    """(loc, scale) of p(z) prod_{present m} N(z; loc_m, scale_m^2) normalised, p(z) = N(0, I); loc/scale (..., M, k),
    present (..., M)."""
    precision = present.unsqueeze(-1).to(loc.dtype) * scale.pow(-2)
    total = 1.0 + precision.sum(-2)  # the prior expert's precision is 1
    return (precision * loc).sum(-2) / total, total.rsqrt()


@GUIDES.register("poe", paper="Wu & Goodman 2018 (MVAE)",
                 summary="multimodal: product of Gaussian experts q_m(z|x_m) and the prior expert over the present "
                         "modalities (mvae)", supports=("real",), only_for="mvae", multimodal=True)
class ProductOfExpertsGuide(ExpertsGuide):
    """q(z | x_S) = p(z) prod_{m in S} q_m(z | x_m) / Z; see the module docstring."""

    guide_name = "poe"

    def posterior(self, x):
        loc, scale = product_of_experts(*self.experts(x))
        return dist.Normal(loc, scale, validate_args=False).to_event(1)


class MixtureOfExperts(TorchDistribution):
    """(1/|S|) sum_{m in S} N(z; loc_m, diag scale_m^2) over the present experts S of each point (the prior N(0, I)
    where none is present), with stratified reparameterised draws (see the module docstring).

    ``loc``/``scale`` (B, M, k) and ``present`` (B, M) describe the points; the batch shape may be expanded to the
    left (particle plates): draws along those dimensions are the strata."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale, present, batch_shape=None, validate_args=None):
        none = ~present.any(-1, keepdim=True)  # no expert: the prior N(0, I) as the single component
        first = torch.zeros_like(present)
        first[..., 0] = True
        swap = (none & first).unsqueeze(-1)
        self.loc = torch.where(swap, torch.zeros((), dtype=loc.dtype, device=loc.device), loc)
        self.scale = torch.where(swap, torch.ones((), dtype=scale.dtype, device=scale.device), scale)
        self.present = present | (none & first)
        self.num_experts = loc.shape[-2]
        batch_shape = torch.Size(loc.shape[:-2] if batch_shape is None else batch_shape)
        super().__init__(batch_shape, torch.Size(loc.shape[-1:]), validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = object.__new__(MixtureOfExperts)
        new.loc, new.scale, new.present, new.num_experts = self.loc, self.scale, self.present, self.num_experts
        TorchDistribution.__init__(new, torch.Size(batch_shape), self.event_shape, validate_args=False)
        return new

    def component_log_probs(self, value: torch.Tensor) -> torch.Tensor:
        """(..., M) log N(value; loc_m, scale_m^2) of every expert (absent ones included)."""
        return dist.Normal(self.loc, self.scale, validate_args=False).log_prob(value.unsqueeze(-2)).sum(-1)

    def log_prob(self, value):
        lp = self.component_log_probs(value)
        present = self.present.expand(lp.shape)
        lp = torch.where(present, lp, torch.full((), -math.inf, dtype=lp.dtype, device=lp.device))
        return torch.logsumexp(lp, -1) - present.sum(-1).to(lp.dtype).log()

    def expert_choice(self, shape: torch.Size) -> torch.Tensor:
        """int64 ``shape``: the expert of each draw (strata along the dimensions left of the points' one)."""
        M, device = self.num_experts, self.loc.device
        n_points = shape[-1]
        strata = torch.arange(int(torch.Size(shape[:-1]).numel()), device=device).reshape(shape[:-1] + (1,))
        # two uniforms per draw whatever M (the random stream does not depend on the number of experts): the offset
        # r of each point, and the present expert that replaces an absent one
        offset = (torch.rand(n_points, device=device) * M).long().clamp_max(M - 1)
        chosen = (strata + offset) % M
        present = self.present.expand(shape + (M,))
        count = present.sum(-1)
        j = (torch.rand(shape, device=device) * count).long().clamp_max(count - 1)  # uniform among the present ones
        rank = present.long().cumsum(-1) - 1
        fallback = (present & (rank == j.unsqueeze(-1))).long().argmax(-1)
        ok = torch.gather(present, -1, chosen.unsqueeze(-1)).squeeze(-1)
        return torch.where(ok, chosen, fallback)

    def rsample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        chosen = self.expert_choice(shape)
        k = self.event_shape[0]
        index = chosen.unsqueeze(-1).unsqueeze(-1).expand(shape + (1, k))
        loc = torch.gather(self.loc.expand(shape + self.loc.shape[-2:]), -2, index).squeeze(-2)
        scale = torch.gather(self.scale.expand(shape + self.scale.shape[-2:]), -2, index).squeeze(-2)
        return loc + scale * torch.randn(shape + (k,), dtype=loc.dtype, device=loc.device)

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)


@GUIDES.register("moe", paper="Shi, Siddharth, Paige & Torr 2019 (MMVAE)",
                 summary="multimodal: mixture of the unimodal experts over the present modalities, stratified "
                         "reparameterised draws, log q = logmeanexp (mvae)", supports=("real",), only_for="mvae",
                 multimodal=True)
class MixtureOfExpertsGuide(ExpertsGuide):
    """q(z | x_S) = (1/|S|) sum_{m in S} q_m(z | x_m); see the module docstring."""

    guide_name = "moe"

    def posterior(self, x):
        return MixtureOfExperts(*self.experts(x))
