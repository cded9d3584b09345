"""Priors p(z) as swappable parts of a model (``--prior``).

A prior is an ``nn.Module`` called as ``prior(batch_size, like)`` that returns a Pyro distribution with batch shape
(batch_size,) and event shape (dim,), created on the device and dtype of the tensor ``like``. The learned priors
(``mog:K``, ``vamp:K``, ``flow:K``) live in :mod:`zoo.learned_priors`.
"""
import pyro.distributions as dist
import torch
from torch import nn

from zoo.registry import Registry

PRIORS = Registry("prior")


@PRIORS.register("standard", summary="N(0, I)")
class StandardNormalPrior(nn.Module):
    """p(z) = N(z; 0, I)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, batch_size: int, like: torch.Tensor):
        zeros = like.new_zeros(())
        return dist.Normal(zeros, 1.0, validate_args=False).expand([batch_size, self.dim]).to_event(1)


def build_prior(spec: str, dim: int, **context) -> nn.Module:
    """Build a registered prior for a latent of size ``dim``; ``context`` carries what richer priors may need
    (e.g. ``data_dim`` for pseudo-inputs) and is passed only to factories that accept it."""
    import inspect

    import zoo.learned_priors  # noqa: F401  (registers mog, vamp, flow)

    factory = PRIORS.entry(spec).factory
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in context.items() if k in accepted}
    return PRIORS.build(spec, dim, **kwargs)
