"""Priors p(z) as swappable parts of a model (``--prior``).

A prior is an ``nn.Module`` called as ``prior(batch_size, like)`` that returns a Pyro distribution with batch shape
(batch_size,) and event shape (dim,), created on the device and dtype of the tensor ``like``. The learned priors
(``mog:K``, ``vamp:K``, ``flow:K``) live in :mod:`zoo.learned_priors`.
"""
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import register_kl

from zoo.distributions.same_shape import Independent, KeepShapeExpand
from zoo.registry import Registry

PRIORS = Registry("prior")


class StandardNormal(KeepShapeExpand, dist.Normal):
    """N(0, 1) as its own class, so that KL(N(mu, sigma^2) || N(0, 1)) dispatches to the closed form below (and
    Pyro's plate hands the cached prior on instead of copying it every step: zoo/distributions/same_shape.py)."""


@register_kl(dist.Normal, StandardNormal)
def _kl_normal_standard_normal(p, q):
    """KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1) / 2 - log sigma  (Kingma & Welling 2014, appendix B):
    the same value as torch's Normal-Normal KL in seven elementwise operations instead of ten."""
    return 0.5 * (p.loc.pow(2) + p.scale.pow(2) - 1) - p.scale.log()


@PRIORS.register("standard", summary="N(0, I)")
class StandardNormalPrior(nn.Module):
    """p(z) = N(z; 0, I). It has no parameters, so the distribution for one (batch size, device, dtype) is built
    once and handed out again at every step."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self._cached = (None, None)

    def forward(self, batch_size: int, like: torch.Tensor):
        key = (batch_size, like.device, like.dtype)
        if self._cached[0] != key:
            zeros = like.new_zeros(())
            fn = Independent(StandardNormal(zeros, 1.0, validate_args=False).expand([batch_size, self.dim]), 1,
                             validate_args=False)
            self._cached = (key, fn)
        return self._cached[1]


def build_prior(spec: str, dim: int, **context) -> nn.Module:
    """Build a registered prior for a latent of size ``dim``; ``context`` carries what richer priors may need
    (e.g. ``data_dim`` for pseudo-inputs) and is passed only to factories that accept it."""
    import inspect

    import zoo.learned_priors  # noqa: F401  (registers mog, vamp, flow)

    factory = PRIORS.entry(spec).factory
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in context.items() if k in accepted}
    return PRIORS.build(spec, dim, **kwargs)
