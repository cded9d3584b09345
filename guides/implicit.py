"""An implicit posterior: z = f(h(x), eps), eps ~ N(0, I), a sampler without a density (Mescheder, Nowozin & Geiger
2017, "Adversarial Variational Bayes", Section 3: the encoder takes noise as an extra input).

    h = h(x)                          the model's feature extractor (``model.make_encoder()``)
    eps ~ N(0, I_e)                   e = ``noise_dim`` (16, the paper's MNIST setting)
    u = MLP([h, eps])                 R^(total latent dim), hidden widths ``hidden`` (one layer as wide as h)
    z_site = biject_to(support)(u_site)   per latent site, as every zoo guide hands values to the model

Everything is reparameterised, so E_q[g(z)] has pathwise gradients; log q(z|x) has no closed form. As a Pyro program
the guide samples the noise as an auxiliary site ``"_eps"`` (so a particle plate around the guide draws independent
noise per particle) and each latent as ``Delta(z, event_dim)`` marked ``infer={"implicit": True}``: Delta's
log-density 0 is *not* log q. :attr:`ImplicitGuide.implicit` tells the rest of the zoo: objectives that need log q
refuse it (:func:`check_objective_fits`, called where a run is assembled), training goes through ``avb``
(:mod:`inference.avb`), whose critic T(x, z) stands in for log q(z|x) - log p(z).

Evaluation (``zoo evaluate``) cannot use Delta's zero as log q either. It importance-samples log p(x) with
:class:`FittedGaussianProposal`: for every test point, S draws of the implicit q(z|x) (S = 128), their mean and
covariance (plus a ridge), and a full-covariance Gaussian with those moments per latent site (sites independent) as
the proposal r(z|x). log p(x) ~= logsumexp_k [log p(x, z_k) - log r(z_k|x)] - log K, z_k ~ r, is an ordinary
importance-sampling estimate with a proposal that has a density and full support: consistent in K, and a stochastic
lower bound of log p(x) in expectation (Jensen), like the zoo's estimate for explicit guides. Its k-hat says how well
r covers the posterior. The -ELBO, KL and reconstruction columns of that evaluation are those of r, not of the
implicit q (whose ELBO has no estimate without T).
"""
from typing import Dict, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from guides.base import GUIDES, AmortizedGuide, _flat
from zoo.errors import ConfigError
from zoo.model import data_plate
from zoo.networks.mlp import MLP

IMPLICIT_NOISE_DIM = 16


def check_objective_fits(guide, objective):
    """Refuse, in one line, an objective that needs log q(z|x) with a guide that has none (``guide.implicit``).

    An objective says it does not need log q with ``needs_log_q = False``; without the attribute, adversarial
    objectives are taken not to (they compare samples), every other one to need it (elbo, iwae:K, iwae-dreg:K,
    stl, jvi:K, enum, ...: all weigh log p(x, z) - log q(z|x))."""
    if not getattr(guide, "implicit", False):
        return
    needs = getattr(objective, "needs_log_q", not getattr(objective, "adversarial", False))
    if needs:
        spec = objective.spec() if hasattr(objective, "spec") else type(objective).__name__
        raise ConfigError(f"objective {spec} needs the density log q(z|x), but guide implicit has none "
                          f"(z = f(x, eps), an implicit posterior); train it with --objective avb, whose critic "
                          f"T(x, z) estimates log q(z|x) - log p(z)")


@GUIDES.register("implicit", paper="Mescheder, Nowozin & Geiger 2017 (AVB)",
                 summary="implicit q(z|x): z = MLP([h(x), eps]), eps ~ N(0, I); no density (train with avb)",
                 supports=("real",), implicit=True)
class ImplicitGuide(AmortizedGuide):
    """z = f(h(x), eps); see the module docstring. Options: ``noise_dim`` (16), ``hidden`` (widths of the MLP after
    the encoder; default one layer as wide as the encoder's features)."""

    implicit = True

    def __init__(self, model, noise_dim: int = IMPLICIT_NOISE_DIM, hidden=None):
        super().__init__(model)
        if not self.sites:
            name = getattr(model, "display_name", lambda: type(model).__name__)()
            raise ConfigError(f"guide implicit samples a model's latents, and model {name} has none; use guide none")
        try:
            noise_dim = int(noise_dim)
        except (TypeError, ValueError):
            noise_dim = 0
        if noise_dim < 1:
            raise ConfigError(f"guide implicit: noise_dim must be a positive integer, got {noise_dim!r}")
        if hidden is None:
            hidden = (self.context_dim,)
        elif isinstance(hidden, (int, float)):
            hidden = (int(hidden),)
        hidden = tuple(int(h) for h in hidden)
        self.noise_dim, self.hidden = noise_dim, hidden
        self.latent_dim = sum(s.dim for s in self.sites)
        self.sampler = MLP(self.context_dim + noise_dim, hidden, self.latent_dim, act="relu")

    def unconstrained(self, h: torch.Tensor, eps: torch.Tensor) -> Dict[str, torch.Tensor]:
        """u per site (..., dim) from features h (..., F) and noise eps (..., noise_dim), broadcast together."""
        shape = torch.broadcast_shapes(h.shape[:-1], eps.shape[:-1])
        u = self.sampler(torch.cat([h.expand(shape + h.shape[-1:]), eps.expand(shape + eps.shape[-1:])], dim=-1))
        return dict(zip([s.name for s in self.sites], u.split([s.dim for s in self.sites], dim=-1)))

    def to_model(self, name: str, u: torch.Tensor) -> torch.Tensor:
        for t in self._to_model[name]:
            u = t(u)
        return u

    def forward(self, x: torch.Tensor, y=None) -> Dict[str, torch.Tensor]:
        h = self.encoder(x)
        values = {}
        with data_plate(x):
            noise = dist.Normal(h.new_zeros(()), h.new_ones(())).expand([x.shape[0], self.noise_dim]).to_event(1)
            eps = pyro.sample("_eps", noise, infer={"is_auxiliary": True, "implicit": True})
            for name, u in self.unconstrained(h, eps).items():
                z = self.to_model(name, u)
                values[name] = pyro.sample(name, dist.Delta(z, event_dim=len(self._shapes[name])),
                                           infer={"implicit": True})
        return values

    @torch.no_grad()
    def draw_unconstrained(self, x: torch.Tensor, num: int) -> Dict[str, torch.Tensor]:
        """``num`` independent draws of u ~ q(u | x) per point, outside Pyro: site -> (num, B, dim)."""
        h = self.encoder(x)
        eps = torch.randn((num, x.shape[0], self.noise_dim), dtype=h.dtype, device=h.device)
        return self.unconstrained(h, eps)

    def extra_repr(self):
        return f"noise_dim={self.noise_dim}, hidden={self.hidden}"


class FittedGaussianProposal(nn.Module):
    """A proposal with a density for importance-sampling log p(x) under a model trained with an implicit guide.

    For each data point and latent site: the mean m and covariance C of ``num_fit`` draws of the implicit q(u | x)
    (u the site's unconstrained value), and r(u | x) = N(m, ``inflate`` (C + ``ridge`` I)), pushed to the model's
    support like any zoo guide (log-det included). Sites are independent under r. The fit is made once per mini-batch
    tensor (every particle chunk of that batch uses the same r) and never differentiated."""

    implicit = False

    def __init__(self, guide: ImplicitGuide, num_fit: int = 128, ridge: float = 1e-4, inflate: float = 1.0):
        super().__init__()
        if num_fit < 2:
            raise ConfigError(f"the fitted proposal needs at least 2 draws of q(z|x) per point, got {num_fit}")
        self.implicit_guide = guide
        self.num_fit, self.ridge, self.inflate = int(num_fit), float(ridge), float(inflate)
        self._fitted_for, self._fit = None, None

    def describe(self) -> str:
        return (f"implicit guide (no density log q(z|x)): proposal r(z|x) per test point and latent site = "
                f"N(mean, {self.inflate:g} (cov + {self.ridge:g} I)) of {self.num_fit} draws of the implicit q(z|x) "
                f"(full covariance, sites independent); log w = log p(x, z) - log r(z|x); -ELBO, KL and recon are "
                f"those of r")

    @torch.no_grad()
    def fit(self, x: torch.Tensor):
        draws = self.implicit_guide.draw_unconstrained(x, self.num_fit)
        fit = {}
        for name, u in draws.items():
            u = u.float()
            mean = u.mean(0)
            centred = (u - mean).transpose(0, 1)  # (B, S, d)
            cov = centred.transpose(-1, -2) @ centred / (self.num_fit - 1)
            eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
            cov = self.inflate * (cov + self.ridge * eye)
            fit[name] = (mean, torch.linalg.cholesky(cov))
        self._fitted_for, self._fit = x, fit
        return fit

    def forward(self, x: torch.Tensor, y=None) -> Dict[str, torch.Tensor]:
        fit = self._fit if self._fitted_for is x else self.fit(x)
        guide, values = self.implicit_guide, {}
        with data_plate(x):
            for site in guide.sites:
                loc, scale_tril = fit[site.name]
                fn = dist.MultivariateNormal(loc, scale_tril=scale_tril, validate_args=False)
                transforms = guide._to_model[site.name]
                if transforms:
                    fn = dist.TransformedDistribution(fn, transforms, validate_args=False)
                values[site.name] = pyro.sample(site.name, fn)
        return values


def flat_latents(sites: Sequence, values: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The latents' values (..., B, *shape) concatenated in the model's site order: (..., B, total size)."""
    return torch.cat([_flat(values[s.name], s.value_shape) for s in sites], dim=-1)
