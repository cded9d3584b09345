"""Observation models p(x | decoder output) for flattened data (..., D).

Each likelihood is an ``nn.Module`` that says how many decoder outputs it needs per data dimension, turns them into a
Pyro distribution with event shape (D,), and checks once, before training, that the data suit it (a Bernoulli
likelihood on grey levels is the classic silent error of other zoos).
"""
import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from zoo.distributions.same_shape import KeepShapeExpand, diagonal_normal
from zoo.networks.precision import full_precision

from zoo.errors import ConfigError, DataError
from zoo.registry import Registry

LIKELIHOODS = Registry("likelihood")


class BernoulliLogits(dist.Bernoulli):
    """``Bernoulli(logits)`` whose ``log_prob`` broadcasts only the data, never the logits: torch's version passes both
    through ``broadcast_all``, whose autograd expand of the logits costs ~0.1 ms of backward per VAE step at batch 128.
    Same value: log p(x) = -BCE_with_logits(logits, x) elementwise."""

    def log_prob(self, value):
        logits = self.logits
        if value.shape != logits.shape:
            shape = torch.broadcast_shapes(value.shape, logits.shape)
            logits, value = logits.expand(shape), value.expand(shape)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")


class BernoulliLogitsImage(KeepShapeExpand, dist.Independent):
    """``Independent(BernoulliLogits(logits), 1)``: the pixels of one data point as one event, with log-mass

        log p(x) = sum_d [x_d l_d - softplus(l_d)] = x . l - sum_d softplus(l_d).

    Without autograd (evaluation) it is computed as a product-and-sum and a softplus-and-sum: two passes over a
    (particles x points x pixels) tensor instead of the elementwise form's four, which took three quarters of the
    importance-sampling time at K=5000. (Not an einsum: CPU autocast would run its matrix product in bfloat16.)
    Under autograd (training) it is ``-sum_d BCE_with_logits(l_d, x_d)``, negated after the sum: that backward is one
    fused kernel (sigmoid(l) - x), cheaper at training batch sizes than the product's and softplus's (measured 1.10
    against 1.20 times the hand-written step at batch 128). Both equal the Bernoulli log-mass for every x.
    Construct it as ``BernoulliLogitsImage(BernoulliLogits(logits=l), 1)`` so that Pyro's ``expand`` keeps working."""

    def log_prob(self, value):
        logits = self.base_dist.logits
        if self.reinterpreted_batch_ndims != 1:
            return super().log_prob(value)
        value = value.to(logits.dtype)
        if logits.requires_grad and torch.is_grad_enabled():
            if value.shape != logits.shape:
                shape = torch.broadcast_shapes(value.shape, logits.shape)
                logits, value = logits.expand(shape), value.expand(shape)
            return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)
        return (value * logits).sum(-1) - F.softplus(logits).sum(-1)  # elementwise: float32 under bf16 autocast


@LIKELIHOODS.register("bernoulli", summary="Bernoulli(logits) per pixel; binary data only")
class BernoulliLikelihood(nn.Module):
    """p(x|z) = prod_d Bernoulli(x_d; sigmoid(f(z)_d)), for data in {0, 1}."""

    params_per_dim = 1
    is_discrete = True  # a pmf: NLL / (D ln 2) is bits per dimension

    def forward(self, out: torch.Tensor):
        base = BernoulliLogits(logits=full_precision(out), validate_args=False)  # fp32 log-densities under bf16
        return BernoulliLogitsImage(base, 1, validate_args=False)

    def mean(self, out):
        return torch.sigmoid(out)

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        if not bool(((x == 0) | (x == 1)).all()):
            raise DataError(
                f"the Bernoulli likelihood needs binary data, but {where} has values in "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}] that are not all 0 or 1; "
                "binarize them (--binarize dynamic|static) or choose --likelihood gaussian")


@LIKELIHOODS.register("gaussian", summary="Normal(f(z), sigma^2 I) with a fixed sigma (--sigma)")
class GaussianLikelihood(nn.Module):
    """p(x|z) = N(x; f(z), sigma^2 I), with sigma fixed (``learn_scale=False``) or a learned per-dimension scale."""

    params_per_dim = 1
    is_discrete = False  # a density: its NLL is not a code length, no bits/dim

    def __init__(self, data_dim: int, sigma: float = 0.1, learn_scale: bool = False):
        super().__init__()
        if not sigma > 0:
            raise ConfigError(f"--sigma must be positive, got {sigma}")
        log_sigma = torch.full((data_dim,), math.log(sigma))
        if learn_scale:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def forward(self, out: torch.Tensor):
        return diagonal_normal(full_precision(out), self.log_sigma.exp())

    def mean(self, out):
        return out

    def check_data(self, x, where: str = "the data"):
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{where} contains NaN or infinite values")


@LIKELIHOODS.register("gaussian-learned", summary="Normal(f(z), diag(sigma^2)) with a learned per-pixel sigma")
def learned_gaussian(data_dim: int, sigma: float = 0.1):
    return GaussianLikelihood(data_dim, sigma, learn_scale=True)


def build_likelihood(name: str, data_dim: int, sigma: float = 0.1) -> nn.Module:
    entry = LIKELIHOODS.entry(name)
    if entry.name == "bernoulli":
        return BernoulliLikelihood()
    return LIKELIHOODS.build(name, data_dim, sigma=sigma)


# 8-bit grey levels: discretized-logistic, discretized-mix-logistic:K (the module registers them here)
from zoo import likelihoods_discretized  # noqa: E402,F401
