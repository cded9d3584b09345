"""Amortized guides built for any zoo model from the latent sites it declares.

A guide is an ``nn.Module`` (not a ``PyroModule``, see zoo/model.py) with the model's signature ``forward(x, y=None)``. It runs the model's own
feature extractor h = h(x) (``model.make_encoder()``), then samples the model's latent sites in their declared order
inside the same ``pyro.plate("data", B)``, each from a distribution whose every parameter is emitted per data point
from h (and from the latents the site depends on). Subclasses choose that distribution (:meth:`site_distribution`):
a diagonal Gaussian, or a diagonal Gaussian pushed through amortized flows.

Guides are registered with :data:`GUIDES` and built with :func:`build_guide`, independently of the model, so any
compatible model/guide pair can be trained together.
"""
from typing import Dict

import pyro
import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.model import data_plate
from zoo.registry import Registry

GUIDES = Registry("guide")


class AmortizedGuide(nn.Module):
    #: the latent supports this guide can represent
    supports = ("real",)

    def __init__(self, model):
        super().__init__()
        sites = model.latent_sites()
        unsupported = [s.name for s in sites if s.support not in self.supports]
        if unsupported:
            raise ConfigError(
                f"guide {type(self).__name__} handles {'/'.join(self.supports)} latents, but model "
                f"{type(model).__name__} has {', '.join(unsupported)} with support "
                f"{', '.join(s.support for s in sites if s.name in unsupported)}; choose a guide for that support")
        self.sites = sites
        self.encoder = model.make_encoder()
        self.context_dim = self.encoder.out_features
        dims = {s.name: s.dim for s in sites}
        self.input_dims = {s.name: self.context_dim + sum(dims[d] for d in s.depends_on) for s in sites}

    def site_distribution(self, site, context: torch.Tensor):
        """q(site | x, parents) given the per-point context (h(x) and the parents' values), batch shape context[:-1]."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y=None) -> Dict[str, torch.Tensor]:
        h = self.encoder(x)
        values = {}
        with data_plate(x):
            for site in self.sites:
                context = h
                if site.depends_on:
                    parents = [values[d] for d in site.depends_on]
                    shape = torch.broadcast_shapes(h.shape[:-1], *(p.shape[:-1] for p in parents))
                    context = torch.cat([t.expand(shape + t.shape[-1:]) for t in [h] + parents], dim=-1)
                values[site.name] = pyro.sample(site.name, self.site_distribution(site, context))
        return values


def build_guide(spec: str, model, **options) -> nn.Module:
    """The guide named by ``spec`` (``diagonal``, ``planar:8``, ...) built for ``model``; ``options`` are the
    guide's keyword options (e.g. ``num_ortho_vecs=8`` for ``sylvester-o:K``)."""
    import guides.diagonal  # noqa: F401  (registers the guides)
    import guides.flows  # noqa: F401

    try:
        guide = GUIDES.build(spec, model, **options)
    except (TypeError, ValueError) as e:
        if options:  # an unknown option or a value of the wrong kind, e.g. num_ortho_vecs=abc
            given = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
            raise ConfigError(f"guide {spec!r} cannot be built with the options {given} ({e})")
        raise
    bind_model_to_guide(model, guide)
    return guide


def bind_model_to_guide(model, guide):
    """Hand ``guide`` to the parts of ``model`` that use the guide's q(z|.) (the VampPrior: ``part.bind(guide)``).

    They keep a plain reference, not a sub-module, so the encoder's weights are stored and trained once, in the
    guide; the last guide built for a model is the one its parts use (guide swapping). A part refuses a guide it
    cannot use with a :class:`~zoo.errors.ConfigError` (e.g. a flow whose q has no density at arbitrary points)."""
    for part in model.modules():
        if getattr(part, "needs_guide", False):
            part.bind(guide)
