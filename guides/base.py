"""Amortized guides built for any zoo model from the latent sites it declares.

A guide is an ``nn.Module`` (not a ``PyroModule``, see zoo/model.py) with the model's signature ``forward(x, y=None)``. It runs the model's own
feature extractor h = h(x) (``model.make_encoder()``), then samples the model's latent sites in their declared order
inside the same ``pyro.plate("data", B)``, each from a distribution whose every parameter is emitted per data point
from h (and from the latents the site depends on). Subclasses choose that distribution (:meth:`site_distribution`):
a diagonal Gaussian, or a diagonal Gaussian pushed through amortized flows.

Guides are registered with :data:`GUIDES` and built with :func:`build_guide`, independently of the model, so any
compatible model/guide pair can be trained together.

A latent whose model-side value is not a flat real vector (found by tracing, :mod:`zoo.tracing`: a per-point shape
from nested plates, a positive / unit-interval / simplex support) is sampled as a flat u in R^dim by the subclass's
distribution and handed to the model as ``biject_to(support)(u.reshape(shape))``; ``TransformedDistribution`` adds the
bijection's log-det, so log q stays exact for every guide.

A user's own guide -- a class taking ``(model, **options)``, an ``nn.Module``, or a plain Pyro function
``guide(x, y=None)`` (:class:`GuideProgram`) -- goes through :func:`build_guide` like the registered ones, and
:func:`check_guide_matches` refuses at build time, in one line, a guide that misses a latent of the model or samples a
site the model lacks.
"""
import inspect
from typing import Dict, Optional

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.distributions import biject_to
from torch.distributions.transforms import ReshapeTransform

from zoo.errors import ConfigError, ContractError
from zoo.model import accepts_y, data_plate, modules_referenced
from zoo.pyro_params import CapturedParams, ParamMessenger
from zoo.registry import Registry
from zoo.sequences import step_mask
from zoo.transforms.cache import CachedTransform

GUIDES = Registry("guide")


class AmortizedGuide(nn.Module):
    #: the latent supports this guide can represent
    supports = ("real",)

    def __init__(self, model):
        super().__init__()
        sites = model.latent_sites()
        unsupported = [s for s in sites if s.support not in self.supports]
        if unsupported:
            s = unsupported[0]
            name = getattr(model, "display_name", lambda: type(model).__name__)()
            raise ContractError(
                f"guide {type(self).__name__} handles {'/'.join(self.supports)} latents, but model {name}'s site "
                f"{s.name!r} has support {s.support}; choose a guide for that support (`zoo list` shows each guide)")
        self.sites = sites
        self.encoder = model.make_encoder()
        self.context_dim = self.encoder.out_features
        widths = {s.name: s.value_size for s in sites}
        self.input_dims = {s.name: self.context_dim + sum(widths[d] for d in s.depends_on) for s in sites}
        self._to_model = {s.name: _model_space_transforms(s) for s in sites}
        self._shapes = {s.name: s.value_shape for s in sites}
        # sequence models (zoo/sequences.py): the latent of a padded step is masked here as in the model
        self._site_steps = model.latent_site_steps() if hasattr(model, "latent_site_steps") else {}
        self._step_dim = getattr(model, "step_dim", None)

    def site_distribution(self, site, context: torch.Tensor):
        """q(site | x, parents) given the per-point context (h(x) and the parents' values), batch shape context[:-1]."""
        raise NotImplementedError

    def local_parameter_heads(self) -> Optional[Dict[str, nn.Module]]:
        """The modules whose outputs hold q's per-data-point parameters, by a readable name, or None when this guide has
        none that could be set free per point. Each output has shape (..., B, p), one p-vector per data point along
        the data dim: the local fit of the inference gap (:mod:`inference.inference_gap`) adds a free per-point tensor
        to it. Subclasses with such heads say which."""
        return None

    def forward(self, x: torch.Tensor, y=None) -> Dict[str, torch.Tensor]:
        h = self.encoder(x)
        values = {}
        masks = step_mask(x, self._step_dim) if self._site_steps else None
        with data_plate(x):
            for site in self.sites:
                if masks is not None and site.name in self._site_steps:
                    with poutine.mask(mask=masks[..., self._site_steps[site.name]]):
                        values[site.name] = self._sample_site(site, h, values)
                    continue
                values[site.name] = self._sample_site(site, h, values)
        return values

    def _sample_site(self, site, h, values):
        """Sample one site from q(site | h(x), its parents' values)."""
        context = h
        if site.depends_on:
            parents = [_flat(values[d], self._shapes[d]) for d in site.depends_on]
            shape = torch.broadcast_shapes(h.shape[:-1], *(p.shape[:-1] for p in parents))
            context = torch.cat([t.expand(shape + t.shape[-1:]) for t in [h] + parents], dim=-1)
        fn = self.site_distribution(site, context)
        transforms = self._to_model[site.name]
        if transforms:
            fn = dist.TransformedDistribution(fn, transforms, validate_args=False)  # log-det included
        return pyro.sample(site.name, fn)


def _flat(value: torch.Tensor, shape) -> torch.Tensor:
    """A latent's value (..., B, *shape) as (..., B, prod(shape)), to condition another site on it."""
    if len(shape) == 1:
        return value
    if len(shape) == 0:
        return value.unsqueeze(-1)
    return value.flatten(-len(shape))


def _model_space_transforms(site) -> list:
    """u in R^dim -> the model's value: reshape to the unconstrained shape, then ``biject_to(support)``."""
    from zoo.tracing import is_real, unconstrained_shape

    if site.support != "real" or (site.shape is None and is_real(site.constraint)):
        return []
    # cached (one entry), so that scoring the sample just drawn inverts each map by lookup, handing the flow underneath
    # the very tensor it produced (a planar or radial flow has no inverse at other points); CachedTransform returns
    # only that caller's tensor, and only while it is unchanged, never a remembered output
    u_shape = unconstrained_shape(site.constraint, site.value_shape)
    transforms = []
    if tuple(u_shape) != (site.dim,):
        transforms.append(CachedTransform(ReshapeTransform(torch.Size([site.dim]), torch.Size(u_shape))))
    if not is_real(site.constraint):
        transforms.append(CachedTransform(biject_to(site.constraint)))
    return transforms


class GuideProgram(nn.Module):
    """A user's Pyro guide function ``guide(x, y=None)`` as a zoo guide: the ``nn.Module``s it names and its
    ``pyro.param``s / ``pyro.module``s are its parameters (trained, checkpointed; :mod:`zoo.pyro_params`)."""

    def __init__(self, function, name: str = ""):
        super().__init__()
        self._function = function
        self._name = name or getattr(function, "__name__", "guide")
        self.used_modules = nn.ModuleDict(modules_referenced(function))
        self.captured = CapturedParams()
        self._takes_y = accepts_y(function)

    def forward(self, x, y=None):
        with ParamMessenger(self.captured):
            return self._function(x, y) if self._takes_y else self._function(x)

    def extra_repr(self):
        return self._name


def _is_program(obj, factory_first: str) -> bool:
    """A plain function whose first parameter is not ``factory_first`` is a Pyro program, not a factory."""
    if not inspect.isfunction(obj):
        return False
    params = list(inspect.signature(obj).parameters)
    return not params or params[0] != factory_first


def check_guide_matches(model, guide, x, y=None):
    """One line, exit 2 from the CLI, when the guide does not sample exactly the model's latents: run the guide once
    and the model replayed on it, and compare the sites (enumerated and auxiliary sites excepted)."""
    with torch.no_grad():
        guide_trace = poutine.trace(poutine.block(guide, hide_types=["param"])).get_trace(x, y)
        model_trace = poutine.trace(poutine.block(poutine.replay(model, trace=guide_trace),
                                                  hide_types=["param"])).get_trace(x, y)

    def latent(site):
        return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)

    sampled = [n for n, s in guide_trace.nodes.items() if latent(s) and not s["infer"].get("is_auxiliary")]
    needed = [n for n, s in model_trace.nodes.items() if latent(s) and not s["infer"].get("enumerate")]
    gname = getattr(guide, "_name", type(guide).__name__)
    mname = getattr(model, "display_name", lambda: type(model).__name__)()
    missing = [n for n in needed if n not in sampled]
    if missing:
        raise ContractError(f"guide {gname} does not sample the latent {missing[0]!r} of model {mname}, so the model "
                            f"would draw it from its prior and the bound would be wrong; sample "
                            f"pyro.sample({missing[0]!r}, ...) in the guide, inside pyro.plate('data', ...)")
    extra = [n for n in sampled if n not in model_trace.nodes]
    if extra:
        raise ContractError(f"guide {gname} samples {extra[0]!r}, which model {mname} has no site of; rename it to "
                            f"one of the model's latents ({', '.join(needed) or 'none'}) or mark it "
                            f"infer={{'is_auxiliary': True}}")
    observed = [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]
    for n in sampled:
        if n in observed:
            raise ContractError(f"guide {gname} samples {n!r}, which model {mname} observes; a guide samples latents "
                                f"only")


def build_guide(spec: str, model, **options) -> nn.Module:
    """The guide named by ``spec`` (``diagonal``, ``planar:8``, ...) built for ``model``; ``options`` are the
    guide's keyword options (e.g. ``num_ortho_vecs=8`` for ``sylvester-o:K``)."""
    import guides.diagonal  # noqa: F401  (registers the guides)
    import guides.flows  # noqa: F401

    if isinstance(spec, nn.Module):  # a guide object (Python API)
        bind_model_to_guide(model, spec)
        return spec
    if callable(spec) and not isinstance(spec, str):
        obj, name, user = spec, getattr(spec, "__name__", "guide"), True
    else:
        entry, _ = GUIDES.lookup(spec)
        obj, name, user = entry.factory, entry.name, entry.source != "registered"
    if user and _is_program(obj, "model"):  # a Pyro guide function
        if options:
            raise ConfigError(f"guide {name} is a Pyro function; it takes no options (got {', '.join(options)})")
        from zoo.references import short_name

        guide = GuideProgram(obj, short_name(name))
        bind_model_to_guide(model, guide)
        return guide
    if not isinstance(spec, str):
        try:
            guide = obj(model, **options)
        except TypeError as e:
            raise ConfigError(f"guide {name} cannot be built for this model with options {options}: {e}")
        bind_model_to_guide(model, guide)
        return guide
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
