"""Shared plumbing of the flow density transforms: event dims, image reshaping, the log-det hand-over.

Conventions (all transforms of :mod:`zoo.transforms`):

* **Direction.** The forward map of every transform is the papers' normalising direction f: data -> latent
  (x -> z). A density model scores data with a :class:`~pyro.distributions.TransformedDistribution` whose transforms go
  the other way, latent -> data; :func:`as_generative` turns a list written in the papers' order into that list.
* **Layout.** Inputs are flattened vectors of shape ``(..., D)`` with ``event_dim = 1``; an image transform is given the
  ``(C, H, W)`` shape it acts on and folds ``(..., C*H*W)`` row-major (channel-major, as ``x.reshape(-1, C, H, W)``)
  internally, so any number of leading batch dims (``(B, D)``, ``(K, B, D)``) works and the transforms compose with a
  base distribution of event shape ``(D,)``.
* **Log-det.** ``log_abs_det_jacobian(x, y)`` returns one value per data point (shape ``x.shape[:-1]``). Transforms
  whose log-det needs the conditioner's output remember it from the last ``_call`` / ``_inverse`` (keyed on the
  identity of both x and y, used once), so scoring costs one network pass; outputs themselves are never cached
  (``cache_size = 0``), so a repeated call with the same input tensor after an optimiser step is never stale.
"""
from typing import Sequence, Tuple

import torch
from torch.distributions import constraints
from torch.distributions.transforms import _InverseTransform, ComposeTransform

from pyro.distributions.torch_transform import TransformModule


def _shape3(shape) -> Tuple[int, int, int]:
    """``(C, H, W)`` from a 3-tuple, or ``(D, 1, 1)`` from an int (vector data seen as D channels of 1x1)."""
    if isinstance(shape, int):
        shape = (shape, 1, 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"expected a (C, H, W) shape of positive ints, got {shape!r}")
    return shape


class FlowTransform(TransformModule):
    """Base class: a bijection of flattened vectors (event_dim 1) with an exact per-data-point log-det."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self):
        super().__init__(cache_size=0)
        self._ldj_memo = None

    # Outputs are never cached, so a "cached" copy is this same object.
    def with_cache(self, cache_size=1):
        return self

    def _remember(self, x, y, ldj):
        self._ldj_memo = (x, y, ldj)

    def _recall(self, x, y):
        memo = self._ldj_memo
        if memo is not None and memo[0] is x and memo[1] is y:
            self._ldj_memo = None
            return memo[2]
        return None

    def __getstate__(self):
        state = super().__getstate__()
        state["_ldj_memo"] = None
        return state


class ImageFlowTransform(FlowTransform):
    """A :class:`FlowTransform` acting on images of shape ``(C, H, W)`` stored as flattened vectors."""

    def __init__(self, shape):
        super().__init__()
        self.shape = _shape3(shape)
        self.out_shape = self.shape  # overridden by shape-changing transforms (Squeeze)

    @property
    def dim(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def _fold(self, x, shape=None):
        """``(..., C*H*W) -> (N, C, H, W)`` with N the product of the batch dims."""
        shape = self.shape if shape is None else shape
        if x.shape[-1] != shape[0] * shape[1] * shape[2]:
            raise ValueError(f"{type(self).__name__} of shape {shape} got inputs of size {x.shape[-1]}")
        return x.reshape((-1,) + tuple(shape))

    @staticmethod
    def _unfold(x4, batch_shape):
        return x4.reshape(tuple(batch_shape) + (-1,))


def register_parts(module_list, transforms):
    """Append the ``nn.Module`` behind each transform (a module itself, or the module of a ``.inv``) to
    ``module_list`` so that its parameters are registered; returns the transforms as a list."""
    transforms = list(transforms)
    for t in transforms:
        base = t
        while isinstance(base, _InverseTransform):
            base = base._inv
        if isinstance(base, torch.nn.Module):
            module_list.append(base)
        elif isinstance(base, ComposeTransform):
            register_parts(module_list, base.parts)
    return transforms


def as_generative(flow: Sequence) -> list:
    """The transform list for ``TransformedDistribution(base, ...)`` from a flow written in the papers' order.

    ``flow = [f_1, ..., f_L]`` maps data to latent, ``z = f_L(...f_1(x))``; the returned list
    ``[f_L^{-1}, ..., f_1^{-1}]`` maps a base sample to data, and ``log_prob(x)`` then evaluates
    ``log p_Z(f(x)) + sum_l log|det df_l/dx_{l-1}|`` by running each ``f_l`` forward (its cheap direction)."""
    return [t.inv for t in reversed(list(flow))]
