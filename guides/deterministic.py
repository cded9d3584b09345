"""The deterministic encoder ``deterministic``: z = mu(h(x)), a point mass instead of a distribution.

    q(z | x) = delta(z - mu(h(x))),    h = h(x) the model's feature extractor, one linear head per latent site

The deterministic encoder of the adversarial auto-encoder (Makhzani et al. 2016, Section 2.1: "deterministic",
beside the Gaussian posterior): its aggregate posterior q(z) = E_x delta(z - mu(x)) is matched to the prior by a latent
critic (``--objective aae``), not by a KL term. A point mass has no density, so the guide is *implicit*
(``implicit = True``): objectives that need log q(z|x) (elbo, iwae:K, ...) refuse it in one line, and ``zoo evaluate``
importance-samples with the Gaussian proposal fitted per point (:mod:`inference.fitted_proposal`: started at mu(x) with
a small ridge, refined on the point's ELBO), as for the implicit guide of AVB.
"""
from typing import Dict

import torch
import pyro.distributions as dist

from guides.base import GUIDES, AmortizedGuide
from zoo.networks.precision import full_precision
from torch import nn


@GUIDES.register("deterministic", paper="Makhzani et al. 2016 (AAE, deterministic encoder)",
                 summary="z = mu(x), a point mass (no density: for aae)", supports=("real",), implicit=True,
                 objective="aae")
class DeterministicGuide(AmortizedGuide):
    """z = mu(h(x)) for every latent site; see the module docstring."""

    implicit = True

    def __init__(self, model):
        super().__init__(model)
        self.heads = nn.ModuleDict({s.name: nn.Linear(self.input_dims[s.name], s.dim) for s in self.sites})

    def site_distribution(self, site, context):
        return dist.Delta(full_precision(self.heads[site.name](context)), event_dim=1)

    @torch.no_grad()
    def draw_unconstrained(self, x: torch.Tensor, num: int) -> Dict[str, torch.Tensor]:
        """``num`` copies of mu(x) per point (a point mass has no spread): site -> (num, B, dim), for the fitted
        proposal of the evaluation. Sites conditioned on other latents get their parents' point values."""
        values = self(x)
        draws = {}
        for site in self.sites:
            u = values[site.name].reshape(x.shape[0], -1)
            draws[site.name] = u.unsqueeze(0).expand((num,) + u.shape)
        return draws
