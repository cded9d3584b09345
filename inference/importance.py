"""Per-data-point importance weights log w = log p(x, z) - log q(z | x), z ~ q(z | x), vectorised over particles.

The guide runs under a particle plate placed left of the model's plates, and the model replays its latents; each
site's log-density is summed to shape (K, B), one value per particle and data point. This is what Pyro's
``vectorized_importance_weights`` does not give (it sums over the batch): the IWAE bound and the importance-sampled
log-likelihood need one weight per point.

    log p(x) ~= log (1/K) sum_k w_k,   w_k = p(x, z_k) / q(z_k | x)         (Burda, Grosse, Salakhutdinov 2016)
"""
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample


class WeightTerms(NamedTuple):
    log_obs: torch.Tensor  # (K, B) sum of observed sites' log p (the reconstruction term for a VAE)
    log_prior: torch.Tensor  # (K, B) sum of latent sites' log p under the model
    log_q: torch.Tensor  # (K, B) sum of latent sites' log q under the guide
    latents: dict  # site name -> value (K, B, ...) from the guide

    @property
    def log_w(self):
        return self.log_obs + self.log_prior - self.log_q


def scale_and_mask(site, lp: torch.Tensor) -> torch.Tensor:
    """``lp`` (a log-density of the trace site) times the site's scale (KL weight, ...) and mask, as Pyro's ELBOs
    count it."""
    scale = site["scale"]
    if not (isinstance(scale, float) and scale == 1.0):
        lp = lp * scale
    if site["mask"] is not None:
        lp = lp * site["mask"]
    return lp


def scaled_log_prob(site) -> torch.Tensor:
    """A trace site's log-density times its scale and mask."""
    return scale_and_mask(site, site["fn"].log_prob(site["value"]))


def sum_to_points(lp: torch.Tensor, shape) -> torch.Tensor:
    """Sum the dims right of ``shape`` (plates nested inside the data plate) into each (particle, point)."""
    while lp.dim() > len(shape):
        lp = lp.sum(-1)
    return lp.expand(shape)


def _site_log_prob(site, shape):
    return sum_to_points(scaled_log_prob(site), shape)


def weight_terms(model, guide, x, y=None, num_particles: int = 1, max_plate_nesting=None) -> WeightTerms:
    """Trace the guide under a K-particle plate, replay the model, return the per-(particle, point) terms.

    Each program gets the particle plate left of its own plates: a traced model may nest plates inside the data plate
    (a latent of per-point shape (3,) from ``plate("parts", 3)``) where the guide samples that value as one event, so
    their nestings differ while the values, (K, B, 3), agree."""
    if max_plate_nesting is None:
        max_plate_nesting = model.max_plate_nesting
    K, B = num_particles, x.shape[0]
    shape = (K, B)
    guide_nesting = getattr(guide, "max_plate_nesting", 1)
    with pyro.plate("particles", K, dim=-(guide_nesting + 1)):
        guide_trace = poutine.trace(guide).get_trace(x, y)
    with pyro.plate("particles", K, dim=-(max_plate_nesting + 1)):
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    zeros = x.new_zeros(shape)
    log_q, latents = zeros, {}
    log_obs, log_prior = model_log_terms(model_trace, zeros)
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        log_q = log_q + _site_log_prob(site, shape)
        latents[name] = site["value"]
    return WeightTerms(log_obs, log_prior, log_q, latents)


def model_log_terms(model_trace, zeros: torch.Tensor):
    """(log p of the observed sites, log p of the latent sites) of a model trace, each summed to the shape of
    ``zeros`` = (particles, points)."""
    log_obs, log_prior = zeros, zeros
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        lp = _site_log_prob(site, zeros.shape)
        if site["is_observed"]:
            log_obs = log_obs + lp
        else:
            log_prior = log_prior + lp
    return log_obs, log_prior


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/K) sum_k exp(log_w_k) along ``dim``, stable."""
    return torch.logsumexp(log_w, dim=dim) - torch.log(log_w.new_tensor(float(log_w.shape[dim])))
