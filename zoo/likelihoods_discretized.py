r"""Likelihoods for 8-bit grey-level images: ``discretized-logistic`` and ``discretized-mix-logistic:K``.

Registered with :data:`zoo.likelihoods.LIKELIHOODS` (``zoo/likelihoods.py`` imports this module), so any model that
builds its likelihood by name (vae, hvae, convhvae, pixelvae, pixelhvae, ...) can model grey levels with them:

    zoo train --model vae --likelihood discretized-logistic --binarize none --data mnist5k

* ``discretized-logistic`` -- p(x_d | z) = DL(x_d; mu_d, s_d), a logistic discretised to the 256 levels
  {0, 1/255, ..., 1} with the end bins taking the tails (Kingma et al. 2016, IAF; :class:`DiscretizedLogistic`).
  Two decoder outputs per dimension (``params_per_dim = 2``): mu (identity) and log s, clamped below at
  :data:`LOG_SCALE_MIN` (PixelCNN++'s floor, see there).
* ``discretized-mix-logistic:K`` -- a mixture of K such logistics per dimension (Salimans et al. 2017, PixelCNN++;
  :class:`DiscretizedMixLogistic`), ``params_per_dim = 3 K``: K mixture logits, K locations, K log-scales.

Layout of the decoder output (shared with :mod:`zoo.likelihoods`): the P parameters of D dimensions come as P
consecutive blocks of D values, ``out[..., p * D + d]`` -- what flattening a convolutional (P C, H, W) output gives.

Both are probability mass functions over the 256 levels (they sum to one per pixel, tested through the module), so
the NLL of a test point is in nats of the discrete data and bits/dim = NLL / (D ln 2), as the evaluation reports for
pixel data. :meth:`check_data` refuses data that are not on the k/255 grid in [0, 1] with one line.
"""
import math

import torch
from torch import nn

from zoo.distributions.discretized_logistic import DiscretizedLogistic, DiscretizedMixLogistic
from zoo.errors import ConfigError, DataError
from zoo.likelihoods import LIKELIHOODS

NUM_BINS = 256

#: Floor of log s on the zoo's [0, 1] pixel scale: PixelCNN++'s ``log_scales = tf.maximum(..., -7.)`` (openai/pixel-cnn,
#: ``nn.py``), which is applied to data in [-1, 1]. The map [0, 1] -> [-1, 1] doubles every length, so the same floor
#: on [0, 1] is :math:`\log(e^{-7}/2) = -7 - \log 2`. With the bin width :math:`1/255` and
#: :math:`\delta = 1/(255 s)` the bin width in standard units, the most an interior pixel can get is
#: :math:`\log(\sigma(\delta/2) - \sigma(-\delta/2)) = \log\tanh(\delta/4)`: -0.0271 nats at this floor, as in
#: PixelCNN++ (a floor of -7 on [0, 1] would cap it at -0.234 nats, 0.21 nats per pixel too low).
LOG_SCALE_MIN = -7.0 - math.log(2.0)


def check_8bit(x: torch.Tensor, name: str, where: str, num_bins: int = NUM_BINS):
    """One-line :class:`DataError` unless every value is k / (num_bins - 1) for an integer k in [0, num_bins - 1]."""
    scaled = x * (num_bins - 1)
    on_grid = (x >= 0) & (x <= 1) & ((scaled - scaled.round()).abs() < 1e-3)
    if not bool(on_grid.all()):
        bad = x[~on_grid].flatten()
        raise DataError(
            f"the {name} likelihood models {num_bins} grey levels {{0, 1/{num_bins - 1}, ..., 1}}, but {where} has "
            f"{bad.numel()} values off that grid (e.g. {float(bad[0]):.6g}, range [{float(x.min()):.3g}, "
            f"{float(x.max()):.3g}]); use 8-bit images scaled by 1/{num_bins - 1} with --binarize none, or "
            f"--likelihood gaussian")


def _blocks(out: torch.Tensor, count: int) -> torch.Tensor:
    """(..., count * D) -> (..., count, D), the parameter-major layout."""
    if out.shape[-1] % count:
        raise ValueError(f"decoder output of size {out.shape[-1]} is not {count} blocks")
    return out.reshape(out.shape[:-1] + (count, out.shape[-1] // count))


@LIKELIHOODS.register("discretized-logistic", paper="Kingma et al. 2016 (IAF); Salimans et al. 2017 (PixelCNN++)",
                      summary="logistic discretized to the 256 levels k/255 per pixel (loc, log-scale); 8-bit data")
class DiscretizedLogisticLikelihood(nn.Module):
    """p(x|z) = prod_d DL(x_d; mu_d(z), s_d(z)) over {0, 1/255, ..., 1}; see the module docstring."""

    params_per_dim = 2
    is_discrete = True

    def __init__(self, data_dim: int, sigma: float = 0.1, num_bins: int = NUM_BINS):
        super().__init__()
        self.data_dim, self.num_bins = data_dim, num_bins

    def _params(self, out):
        loc, raw = _blocks(out, 2).unbind(-2)
        return loc, raw.clamp(min=LOG_SCALE_MIN)

    def forward(self, out: torch.Tensor):
        loc, log_scale = self._params(out)
        return DiscretizedLogistic(loc, log_scale, self.num_bins, validate_args=False).to_event(1)

    def mean(self, out):
        return self(out).mean

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        check_8bit(x, "discretized logistic", where, self.num_bins)


@LIKELIHOODS.register("discretized-mix-logistic", arg="K", paper="Salimans et al. 2017 (PixelCNN++)",
                      summary="mixture of K discretized logistics per pixel (3K parameters); 8-bit data")
class DiscretizedMixLogisticLikelihood(nn.Module):
    """p(x|z) = prod_d sum_k pi_dk DL(x_d; mu_dk, s_dk); see the module docstring."""

    is_discrete = True

    def __init__(self, num_components: int, data_dim: int, sigma: float = 0.1, num_bins: int = NUM_BINS):
        super().__init__()
        if num_components < 1:
            raise ConfigError(f"discretized-mix-logistic:K needs K >= 1, got {num_components}")
        self.num_components, self.data_dim, self.num_bins = num_components, data_dim, num_bins
        self.params_per_dim = 3 * num_components

    def _params(self, out):
        k = self.num_components
        p = _blocks(out, 3 * k).movedim(-2, -1)  # (..., D, 3K)
        logits, loc, raw = p.split(k, dim=-1)
        return logits, loc, raw.clamp(min=LOG_SCALE_MIN)

    def forward(self, out: torch.Tensor):
        logits, loc, log_scale = self._params(out)
        return DiscretizedMixLogistic(logits, loc, log_scale, self.num_bins, validate_args=False).to_event(1)

    def mean(self, out):
        return self(out).mean

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        check_8bit(x, "discretized mixture of logistics", where, self.num_bins)

    def extra_repr(self):
        return f"K={self.num_components}"
