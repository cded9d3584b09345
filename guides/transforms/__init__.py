"""Normalizing flows for posteriors, as ``pyro.distributions.transforms`` modules.

:data:`FLOW_FAMILIES` is the table of posterior flow families the guides are built from (``planar:K``,
``sylvester-o:K``, ...): for each family a builder of one amortized step (a ``ConditionalTransformModule`` whose
``condition(h)`` takes the encoder's context ``h`` of shape ``(..., C)``) and of one non-amortized step (a
``TransformModule``). :func:`make_conditional_flow` and :func:`make_flow` build ``num_layers`` steps of a family.

Which implementation backs each family (each checked against the autograd Jacobian in float64 at random parameters,
batched contexts and a particle dimension, see ``tests/guides/test_transforms.py``):

- ``planar``, ``radial``: Pyro's ``ConditionalPlanar`` / ``ConditionalRadial`` with a :class:`ParamHead` hypernetwork
  (amortized); Pyro's ``Planar`` / ``Radial`` (plain), as subclassed in :mod:`guides.transforms.pyro_flows`. No
  inverse of arbitrary points.
- ``householder``: Pyro's ``ConditionalHouseholder`` with a :class:`ParamHead`; Pyro's ``Householder`` (also from
  :mod:`guides.transforms.pyro_flows`).
- ``iaf``: :class:`ConditionalAffineAutoregressive` / :class:`AffineAutoregressive`, Pyro's classes with the inverse
  rewritten (Pyro's fails in float64 unless that is the global default, and on the meta device); autoregressive order
  natural on even steps and reversed on odd ones; the affine update z' = exp(s) z + m of the IAF paper (its eq. 10) by
  default, the gated ("stable", eq. 13-14) update with ``stable=True`` (measured on mnist5k, 40 epochs, iaf:4: the gated
  update left the NLL at the diagonal guide's, the affine one improved it by about 1.2 nats).
- ``sylvester-o``, ``sylvester-h``, ``sylvester-t``: :mod:`guides.transforms.sylvester`.

The hypernetworks default to a linear head from the context (``hidden_dims=()``), as in the papers' amortized flows;
``hidden_dims=[...]`` adds hidden layers. (IAF's context enters its MADE instead, as in Kingma et al. 2016.)

Every family keeps torch's one-entry cache in the form of :class:`zoo.transforms.cache.FreshCache`: the sample a flow
has just drawn is scored without another pass (and without an inverse, for planar, radial and Sylvester), but a
remembered pair is used only while the parameters (of the step, or of the hypernetwork and the context) and the
tensors are unchanged, so scoring a fixed tensor again after an optimiser step computes afresh.

Pyro's own ``Sylvester`` is not used: its row-vector products apply the transposes, so it computes
``x + R^T Q^T tanh(Q S^T x + b)`` while its log-determinant is that of ``x + Q R tanh(S Q^T x + b)`` (they agree only
near its initial parameters), and it builds ``torch.eye`` without a device for more than one reflection.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import torch

from zoo.errors import ConfigError, UnknownNameError
from guides.transforms.autoregressive import (
    AffineAutoregressive,
    ConditionalAffineAutoregressive,
    affine_autoregressive,
    conditional_affine_autoregressive,
)
from guides.transforms.hypernet import ParamHead
from guides.transforms.pyro_flows import (ConditionalHouseholder, ConditionalPlanar, ConditionalRadial, Householder,
                                          Planar, Radial)
from guides.transforms import sylvester as _sylvester
from guides.transforms.sylvester import *  # noqa: F401,F403  (its __all__: the Sylvester flows)

__all__ = [
    "FlowFamily",
    "FLOW_FAMILIES",
    "flow_family",
    "make_conditional_flow",
    "make_flow",
    "ParamHead",
    "AffineAutoregressive",
    "ConditionalAffineAutoregressive",
    "affine_autoregressive",
    "conditional_affine_autoregressive",
] + _sylvester.__all__


@dataclass(frozen=True)
class FlowFamily:
    """One posterior flow family.

    ``conditional(dim, context_dim, layer, **options)`` and ``plain(dim, layer, **options)`` build step number ``layer``
    (0-based; families that alternate an ordering between steps use it). ``options`` lists the keyword options both
    builders accept. ``invertible``: the transforms invert arbitrary points (otherwise only values they just produced,
    from their cache).
    """

    name: str
    paper: str
    summary: str
    conditional: Callable
    plain: Callable
    options: Tuple[str, ...]
    invertible: bool
    volume_preserving: bool = False
    meta: Dict = field(default_factory=dict)


def _reversal(dim: int, layer: int) -> torch.Tensor:
    """Autoregressive order of IAF step ``layer``: natural order, reversed on odd steps (as in Kingma et al. 2016)."""
    perm = torch.arange(dim)
    return perm.flip(0) if layer % 2 else perm


def _cond_planar(dim, context_dim, layer, hidden_dims=()):
    return ConditionalPlanar(ParamHead(context_dim, [1, dim, dim], hidden_dims))


def _cond_radial(dim, context_dim, layer, hidden_dims=()):
    return ConditionalRadial(ParamHead(context_dim, [dim, 1, 1], hidden_dims))


def _cond_householder(dim, context_dim, layer, hidden_dims=(), count_transforms=1):
    return ConditionalHouseholder(dim, ParamHead(context_dim, [dim] * count_transforms, hidden_dims), count_transforms)


def _cond_iaf(dim, context_dim, layer, hidden_dims=None, stable=False):
    return conditional_affine_autoregressive(
        dim, context_dim, hidden_dims=hidden_dims, permutation=_reversal(dim, layer), stable=stable
    )


def _plain_householder(dim, layer, count_transforms=1):
    return Householder(dim, count_transforms=count_transforms)


def _plain_iaf(dim, layer, hidden_dims=None, stable=False):
    return affine_autoregressive(dim, hidden_dims=hidden_dims, permutation=_reversal(dim, layer), stable=stable)


_SNF = "van den Berg, Hasenclever, Tomczak, Welling 2018, Sylvester Normalizing Flows for Variational Inference"

FLOW_FAMILIES: Dict[str, FlowFamily] = {
    f.name: f
    for f in [
        FlowFamily(
            "planar",
            "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows",
            "z + u tanh(w^T z + b), w^T u > -1",
            _cond_planar,
            lambda dim, layer: Planar(dim),
            ("hidden_dims",),
            invertible=False,
        ),
        FlowFamily(
            "radial",
            "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows",
            "z + beta (z - z0) / (alpha + |z - z0|), beta > -alpha",
            _cond_radial,
            lambda dim, layer: Radial(dim),
            ("hidden_dims",),
            invertible=False,
        ),
        FlowFamily(
            "householder",
            "Tomczak, Welling 2016, Improving Variational Auto-Encoders using Householder Flow",
            "(I - 2 v v^T / |v|^2) z, volume preserving",
            _cond_householder,
            _plain_householder,
            ("hidden_dims", "count_transforms"),
            invertible=True,
            volume_preserving=True,
        ),
        FlowFamily(
            "iaf",
            "Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling 2016, Improving Variational Inference with "
            "Inverse Autoregressive Flow",
            "exp(s(z)) z + m(z) with a MADE (or the gated sigma(z) z + (1 - sigma(z)) m(z), stable=true); context into the MADE",
            _cond_iaf,
            _plain_iaf,
            ("hidden_dims", "stable"),
            invertible=True,
        ),
        FlowFamily(
            "sylvester-o",
            _SNF,
            "O-SNF: z + Q R1 tanh(R2 Q^T z + b), Q (D x M) orthonormalised iteratively",
            lambda dim, context_dim, layer, num_ortho_vecs=None, hidden_dims=(), tol=None, max_iter=100: (
                _sylvester.conditional_sylvester_o(
                    dim, context_dim, num_ortho_vecs=num_ortho_vecs, hidden_dims=hidden_dims, tol=tol,
                    max_iter=max_iter,
                )
            ),
            lambda dim, layer, num_ortho_vecs=None, tol=None, max_iter=100: _sylvester.sylvester_o(
                dim, num_ortho_vecs=num_ortho_vecs, tol=tol, max_iter=max_iter
            ),
            ("num_ortho_vecs", "hidden_dims", "tol", "max_iter"),
            invertible=False,
        ),
        FlowFamily(
            "sylvester-h",
            _SNF,
            "H-SNF: z + Q R1 tanh(R2 Q^T z + b), Q a product of Householder reflections",
            lambda dim, context_dim, layer, num_householder=8, hidden_dims=(): _sylvester.conditional_sylvester_h(
                dim, context_dim, num_householder=num_householder, hidden_dims=hidden_dims
            ),
            lambda dim, layer, num_householder=8: _sylvester.sylvester_h(dim, num_householder=num_householder),
            ("num_householder", "hidden_dims"),
            invertible=False,
        ),
        FlowFamily(
            "sylvester-t",
            _SNF,
            "T-SNF: z + P R1 tanh(R2 P^T z + b), P identity / reversal on alternate steps",
            lambda dim, context_dim, layer, hidden_dims=(): _sylvester.conditional_sylvester_t(
                dim, context_dim, reverse=bool(layer % 2), hidden_dims=hidden_dims
            ),
            lambda dim, layer: _sylvester.sylvester_t(dim, reverse=bool(layer % 2)),
            ("hidden_dims",),
            invertible=False,
        ),
    ]
}

#: Other names accepted by :func:`make_flow` / :func:`make_conditional_flow`.
ALIASES = {"affine_autoregressive": "iaf", "affine-autoregressive": "iaf", "o-snf": "sylvester-o",
           "h-snf": "sylvester-h", "t-snf": "sylvester-t"}


def flow_family(name: str) -> FlowFamily:
    """The :class:`FlowFamily` called ``name`` (or an alias); a user-facing error for unknown names."""
    key = ALIASES.get(name, name)
    if key not in FLOW_FAMILIES:
        raise UnknownNameError(f"unknown flow family {name!r}; choose one of: {', '.join(FLOW_FAMILIES)}")
    return FLOW_FAMILIES[key]


def _options(family: FlowFamily, options: dict, plain: bool) -> dict:
    unknown = set(options) - set(family.options)
    if unknown:
        raise ConfigError(
            f"flow family {family.name!r} takes options {', '.join(family.options) or '(none)'}; "
            f"got {', '.join(sorted(unknown))}"
        )
    if plain:  # the hypernetwork's hidden layers mean nothing without a context
        options = {k: v for k, v in options.items() if not (k == "hidden_dims" and family.name not in ("iaf",))}
    return options


def _check_layers(num_layers):
    if int(num_layers) < 1:
        raise ConfigError(f"num_layers must be a positive integer, got {num_layers}")
    return int(num_layers)


def make_conditional_flow(
    family: str, dim: int, context_dim: int, num_layers: int = 1, **options
) -> List[torch.nn.Module]:
    """``num_layers`` amortized steps of ``family``: a list of ``ConditionalTransformModule`` s.

    Each ``condition(h)`` takes a context ``h`` of shape ``(..., context_dim)`` (one row per data point; in a guide the
    encoder's hidden layer) and returns a transform whose parameters have batch shape ``h.shape[:-1]`` and which maps
    ``z`` of shape ``(..., *h.shape[:-1], dim)``. ``options`` are the family's (``FLOW_FAMILIES[family].options``),
    e.g. ``hidden_dims`` of the hypernetwork (none by default: a linear head), ``num_ortho_vecs`` for sylvester-o.
    """
    fam = flow_family(family)
    opts = _options(fam, options, plain=False)
    return [fam.conditional(int(dim), int(context_dim), k, **opts) for k in range(_check_layers(num_layers))]


def make_flow(family: str, dim: int, num_layers: int = 1, **options) -> List[torch.nn.Module]:
    """``num_layers`` non-amortized steps of ``family``: a list of ``TransformModule`` s with learned parameters.

    ``hidden_dims`` is accepted for every family (so one option set serves both builders) and only used by ``iaf``,
    whose MADE it sizes.
    """
    fam = flow_family(family)
    opts = _options(fam, options, plain=True)
    return [fam.plain(int(dim), k, **opts) for k in range(_check_layers(num_layers))]
