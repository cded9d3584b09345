"""Distributions whose ``expand`` to the batch shape they already have returns themselves.

Inside a ``pyro.plate`` every sample site goes through Pyro's ``BroadcastMessenger``, which calls
``fn.expand(target_batch_shape)`` even when ``fn`` already has that batch shape (the common case: a guide or a
likelihood built per data point inside ``pyro.plate("data", B)``). torch's ``expand`` then builds a new distribution
object (two for ``Independent(Normal)``) and a ``Tensor.expand`` view per parameter, and each such view is one more
autograd node in the backward pass. Returning ``self`` there is the same distribution (``expand`` to an unchanged
shape is an identity: equal values, equal log-densities, equal gradients, bit for bit) without that per-step cost,
which is part of the fixed per-step overhead that makes small batches slower than a hand-written loop.

``expand`` to any other shape, or into a given ``_instance``, is torch's and Pyro's as before.
"""
import pyro.distributions as dist
import torch


class KeepShapeExpand:
    """Mixin (put it first in the bases): ``expand`` to the current batch shape is the identity."""

    def expand(self, batch_shape, _instance=None):
        if _instance is None and torch.Size(batch_shape) == self.batch_shape:
            return self
        return super().expand(batch_shape, _instance)


class Normal(KeepShapeExpand, dist.Normal):
    """``pyro.distributions.Normal`` with the identity expand."""


class Independent(KeepShapeExpand, dist.Independent):
    """``pyro.distributions.Independent`` with the identity expand."""


def diagonal_normal(loc: torch.Tensor, scale: torch.Tensor) -> Independent:
    """N(loc, diag(scale^2)) over the last dim: ``Normal(loc, scale).to_event(1)`` with the identity expand on both
    levels (no argument validation, as the guides build it every step)."""
    return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
