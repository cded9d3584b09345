"""Pre-processing of 8-bit data for flow density models: dequantization, the logit transform, bits per dimension.

The zoo's pixel data are floats scaled to [0, 1] (``k / 255`` for an 8-bit level ``k``). A flow models a *density*, so
the discrete levels are first dequantized to continuous values in [0, 1) (:func:`dequantize`), optionally mapped to
the real line by :class:`LogitTransform`, and the resulting log-density is reported in bits per dimension of the
8-bit data (:func:`bits_per_dim`).
"""
import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import constraints

from zoo.transforms._base import FlowTransform


class _OpenInterval(constraints.Constraint):
    """The open interval (-c, 1 + c), both endpoints excluded (torch and Pyro have only closed and half-open
    intervals), tested as ``x + c > 0`` and ``(1 - x) + c > 0``: the two quantities :class:`LogitTransform` takes the
    logarithm of, so a value passes exactly when its image is finite, in any floating dtype."""

    def __init__(self, margin: float):
        self.margin = margin
        self.lower_bound, self.upper_bound = (-margin if margin else 0.0), 1.0 + margin
        super().__init__()

    def check(self, value):
        return (value + self.margin > 0) & ((1 - value) + self.margin > 0)

    def __repr__(self):
        return f"OpenInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


def dequantize(x, *, bins: int = 256, generator: Optional[torch.Generator] = None, dtype=None, check: bool = True):
    r"""Uniform dequantization (Theis, van den Oord & Bethge 2016; used by RealNVP, Glow, MAF):
    :math:`v = (k + u)/\text{bins}` with :math:`u\sim U[0, 1)` per value, where :math:`k\in\{0,\dots,\text{bins}-1\}`
    is the discrete level. The log-density of :math:`v` on :math:`[0,1)^D` is a lower bound on the log-probability
    of :math:`k` plus :math:`D\log(\text{bins})` (see :func:`bits_per_dim`).

    :param x: the levels: an integer tensor with values ``k`` in ``[0, bins-1]``, or a floating tensor of data
        scaled to [0, 1] as ``k / (bins - 1)`` (the zoo's convention), from which ``k`` is recovered by rounding.
    :param bins: the number of levels (256 for 8-bit data).
    :param generator: a ``torch.Generator`` on ``x``'s device for reproducible noise.
    :param dtype: the floating dtype of the output (default: ``x``'s dtype if floating, else torch's default).
    :param check: raise ``ValueError`` when a value is off the grid or out of range (one device sync).
    :return: a tensor of ``x``'s shape with values in [0, 1).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"dequantize expects a torch.Tensor, got {type(x).__name__}")
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    if x.is_floating_point():
        scaled = x.to(dtype) * (bins - 1)
        k = torch.round(scaled)
        if check and not bool(((scaled - k).abs() <= 1e-3).all()):
            raise ValueError(f"dequantize: floating data must be levels k/{bins - 1}; some values are off the grid")
    else:
        k = x.to(dtype)
    if check and not bool(((k >= 0) & (k <= bins - 1)).all()):
        raise ValueError(f"dequantize: levels must lie in [0, {bins - 1}]")
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    return (k + u) / bins


class LogitTransform(FlowTransform):
    r"""
    The logit pre-processing of RealNVP (Dinh, Sohl-Dickstein & Bengio, 2017) for data in [0, 1],

        :math:`y = \mathrm{logit}(p),\qquad p = \alpha + (1 - 2\alpha)\,x`,

    with inverse :math:`x = (\mathrm{sigmoid}(y) - \alpha)/(1 - 2\alpha)` and log-determinant

        :math:`\log|\det J| = \sum_i \big[\log(1 - 2\alpha) - \log p_i - \log(1 - p_i)\big]`.

    The constant :math:`\alpha` keeps :math:`p` inside :math:`[\alpha, 1-\alpha]`, away from the infinities of the logit
    at 0 and 1 (RealNVP: :math:`\alpha = 0.05`; the paper's text writes :math:`\alpha + (1-\alpha)x`, the reference
    implementations use this symmetric form). With :math:`c = \alpha/(1-2\alpha)`, the map is a bijection of the
    *open* interval

        :math:`(-c,\ 1 + c) = \left(-\frac{\alpha}{1-2\alpha},\ \frac{1-\alpha}{1-2\alpha}\right)\supset[0, 1]`

    onto the real line (its ``domain``; the endpoints, where :math:`p` is 0 or 1, map to :math:`\mp\infty` and are
    excluded, so with :math:`\alpha = 0` the domain is (0, 1) and validation rejects 0 and 1). Since
    :math:`p = (1-2\alpha)(x + c)` and :math:`1 - p = (1-2\alpha)((1 - x) + c)`, the forward map is computed as

        :math:`y = \log(x + c) - \log((1 - x) + c)`,

    where :math:`1 - x` is exact near 1 and both sums are accurate near the endpoints; the domain is tested on the same
    two sums, so every floating-point :math:`x` that passes has a finite :math:`y` and log-det (forming :math:`p` first
    rounds it to 0 or below next to :math:`-c`: :math:`-\infty` or NaN). A model sample pushed through the inverse can fall slightly
    outside [0, 1] (clip it for display); data in [0, 1] are always inside. Its log-det is part of the model's
    log-density of the data in [0, 1], so it enters :func:`bits_per_dim`. Forward is the pre-processing direction
    (data -> real line), like the other transforms of :mod:`zoo.transforms`.

    :param alpha: in [0, 0.5).

    References:

    [1] Laurent Dinh, Jascha Sohl-Dickstein, Samy Bengio. Density estimation using Real NVP. ICLR 2017.
    [arXiv:1605.08803]
    """

    codomain = constraints.real_vector

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def domain(self):
        # a bijection of the open interval (-c, 1 + c), c = alpha / (1 - 2 alpha), onto the real line; it holds [0, 1]
        return constraints.independent(_OpenInterval(self.margin), 1)

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    @property
    def margin(self) -> float:
        """c = alpha / (1 - 2 alpha): the domain is (-c, 1 + c)."""
        return self.alpha / (1.0 - 2.0 * self.alpha)

    def _call(self, x):
        # logit(p) with p = (1 - 2 alpha)(x + c), 1 - p = (1 - 2 alpha)((1 - x) + c): the factor cancels
        c = self.margin
        return torch.log(x + c) - torch.log((1 - x) + c)

    def _inverse(self, y):
        return (torch.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)

    def log_abs_det_jacobian(self, x, y):
        # -log p - log(1 - p) = softplus(-y) + softplus(y) for p = sigmoid(y)
        per_dim = math.log1p(-2.0 * self.alpha) + F.softplus(y) + F.softplus(-y)
        return per_dim.sum(-1)


def bits_per_dim(log_px_nats, num_dims: int, *, dequantization_bins: int = 256):
    r"""Bits per dimension of discrete data from the log-density of its dequantized version scaled to [0, 1].

    Convention: ``log_px_nats`` is :math:`\log p(v)` (nats, per data point) of the density of
    :math:`v = (k + u)/\text{bins}\in[0,1)^D` -- the density the zoo's flow models evaluate, logit-transform log-det
    included. The density of the unscaled dequantized data :math:`k + u\in[0, \text{bins})^D` is
    :math:`p(v)/\text{bins}^D`, and

        :math:`\text{bpd} = -\frac{\log p(v) - D\log(\text{bins})}{D\ln 2}
        = -\frac{\log p(v)}{D\ln 2} + \log_2(\text{bins})`,

    which upper-bounds the discrete model's :math:`-\log_2 P(k)/D` (Theis et al. 2016). Example: the uniform density
    on :math:`[0,1]^D` (:math:`\log p = 0`) gives exactly 8 bits/dim for 8-bit data.

    :param log_px_nats: a tensor, array or number of per-data-point log-densities (nats).
    :param num_dims: D, the number of dimensions of a data point (e.g. 784 for MNIST).
    :param dequantization_bins: the number of levels of the discrete data (256 for 8 bits).
    :return: bits/dim, same shape and kind as ``log_px_nats`` (tensor in, tensor out; otherwise float or ndarray).
    :raises ValueError: if any value is NaN or infinite -- they are never dropped -- or ``num_dims < 1``.
    """
    if int(num_dims) != num_dims or num_dims < 1:
        raise ValueError(f"num_dims must be a positive integer, got {num_dims}")
    if dequantization_bins < 1:
        raise ValueError(f"dequantization_bins must be positive, got {dequantization_bins}")
    shift = math.log2(dequantization_bins)
    denom = num_dims * math.log(2.0)
    if isinstance(log_px_nats, torch.Tensor):
        bad = ~torch.isfinite(log_px_nats)
        if bool(bad.any()):
            raise ValueError(f"bits_per_dim: {int(bad.sum())} of {log_px_nats.numel()} log-likelihoods are NaN or "
                             "infinite")
        return -log_px_nats / denom + shift
    arr = np.asarray(log_px_nats, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"bits_per_dim: {int(bad.sum())} of {arr.size} log-likelihoods are NaN or infinite")
    out = -arr / denom + shift
    return float(out) if out.ndim == 0 else out
