r"""Jackknife variational inference (Nowozin 2018, "Debiasing evidence approximations: on importance-weighted
autoencoders and jackknife variational inference"): ``jvi:K`` as an objective, :func:`jackknife_log_px` as an
estimator of log p(x) from K log-weights.

The IWAE estimate L_K = log (1/K) sum_k w_k has bias -mu_2 / (2 K mu^2) + O(1/K^2) (mu = E w, mu_2 = Var w). The
first-order jackknife cancels the 1/K term:

    L^J_K = K L_K - (K - 1) (1/K) sum_i L_{K-1}^{(-i)},     L_{K-1}^{(-i)} = log (1/(K-1)) sum_{j != i} w_j

with bias O(1/K^2). It is no longer a lower bound: it may exceed log p(x). The leave-one-out sums are formed from the
full one as log sum_{j != i} w_j = log sum_j w_j + log1p(-w~_i), stably (w~_i = w_i / sum_j w_j; the one point per
column whose w~_i exceeds 1/2 is summed directly), so the estimator costs O(K) per point and takes any K >= 2.
"""
import math

import torch

from inference.importance import weight_terms
from inference.latent_scale import scale_latents
from inference.objectives import OBJECTIVES, Objective
from zoo.errors import ConfigError


def leave_one_out_logsumexp(log_w: torch.Tensor) -> torch.Tensor:
    """(K, B) -> (K, B): entry i is log sum_{j != i} exp(log_w_j) along dim 0."""
    lse = torch.logsumexp(log_w, dim=0, keepdim=True)
    share = torch.exp(log_w - lse)
    loo = lse + torch.log1p(-share.clamp(max=0.5))
    big = share > 0.5  # at most one entry per column: sum the others directly
    if big.any():
        masked = log_w.masked_fill(big, float("-inf"))
        direct = torch.logsumexp(masked, dim=0, keepdim=True).expand_as(log_w)
        loo = torch.where(big, direct, loo)
    return loo


def jackknife_log_px(log_w: torch.Tensor) -> torch.Tensor:
    """The first-order jackknife (JVI) estimate of log p(x) per point from a (K, B) tensor of log-weights (K >= 2)."""
    K = log_w.shape[0]
    if K < 2:
        raise ConfigError(f"the jackknife estimate needs at least 2 importance samples per point, got {K}")
    lse = torch.logsumexp(log_w, dim=0)
    l_k = lse - math.log(K)
    l_loo = leave_one_out_logsumexp(log_w) - math.log(K - 1)  # (K, B)
    return K * l_k - (K - 1) * l_loo.mean(0)


@OBJECTIVES.register("jvi", arg="K", paper="Nowozin 2018 (jackknife variational inference)",
                     summary="-first-order jackknife of the IWAE bound, K L_K - (K-1) mean L_{K-1}; not a bound")
class JackknifeVI(Objective):
    def __init__(self, num_particles: int = 5):
        super().__init__()
        if num_particles < 2:
            raise ConfigError(f"objective jvi:{num_particles}: the jackknife needs K >= 2 particles (e.g. jvi:8)")
        self.num_particles = num_particles
        self.name = f"jvi:{num_particles}"

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        terms = weight_terms(scale_latents(model, w), scale_latents(guide, w), x, y, self.num_particles,
                             max_plate_nesting=model.max_plate_nesting)
        return -jackknife_log_px(terms.log_w).sum()
