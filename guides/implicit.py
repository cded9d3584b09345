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

Evaluation (``zoo evaluate``) cannot use Delta's zero as log q either: it importance-samples log p(x) with a proposal
that has a density, a full-covariance Gaussian per test point started from the moments of 128 draws of q(z|x)
(:mod:`inference.fitted_proposal`, which says how and why it is refined), and writes so in eval.json's protocol.
"""
from typing import Dict

import pyro
import pyro.distributions as dist
import torch

from guides.base import GUIDES, AmortizedGuide
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
                 supports=("real",), implicit=True, objective="avb")
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

