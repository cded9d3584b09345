r"""Discretised logistic likelihoods for 8-bit images (values :math:`\{0, \frac{1}{255}, \dots, 1\}`).

The observation model of the IAF VAE (Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling, "Improved Variational
Inference with Inverse Autoregressive Flow", NeurIPS 2016) and, as a mixture, of PixelCNN++ (Salimans, Karpathy,
Chen, Kingma, "PixelCNN++: Improving the PixelCNN with Discretized Logistic Mixture Likelihood and Other
Modifications", ICLR 2017). Pixels are scaled to [0, 1] (PixelCNN++ uses [-1, 1]: the bins are the same up to the
affine map, so ``loc`` and ``scale`` differ by it).
"""
import math

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

__all__ = ["DiscretizedLogistic", "DiscretizedMixLogistic", "discretized_grid"]


class _DiscretizedUnitInterval(constraints.Constraint):
    """The grid {0, 1/(n-1), ..., 1}, checked up to a tolerance of 1e-3 of a bin."""

    is_discrete = True
    event_dim = 0

    def __init__(self, num_bins: int):
        self.num_bins = num_bins
        super().__init__()

    def check(self, value):
        scaled = value * (self.num_bins - 1)
        return (value >= 0) & (value <= 1) & ((scaled - scaled.round()).abs() < 1e-3)

    def __repr__(self):
        return f"DiscretizedUnitInterval(num_bins={self.num_bins})"


def discretized_grid(num_bins: int = 256, dtype=None, device=None) -> torch.Tensor:
    """The support ``[0, 1/(n-1), ..., 1]`` as a tensor of shape ``(num_bins,)``."""
    return torch.arange(num_bins, dtype=dtype, device=device) / (num_bins - 1)


def _discretized_logistic_log_prob(value, loc, log_scale, num_bins):
    r"""Elementwise log-probability of the bin of ``value`` (see :class:`DiscretizedLogistic`)."""
    n1 = num_bins - 1
    k = torch.round(value * n1)
    x = k / n1  # the bin centre, free of the rounding in value
    inv_scale = torch.exp(-log_scale)
    half = 0.5 / n1
    plus = (x + half - loc) * inv_scale  # standardised upper edge
    minus = (x - half - loc) * inv_scale  # standardised lower edge
    log_cdf_plus = F.logsigmoid(plus)  # log F(upper edge): the mass of x = 0
    log_sf_minus = F.logsigmoid(-minus)  # log (1 - F(lower edge)): the mass of x = 1
    # log(F(plus) - F(minus)) = log sig(plus) + log sig(-minus) + log(1 - exp(minus - plus)): exact, no cancellation
    delta = plus - minus
    positive = delta > 1e-6  # below, the bin-centre rule is exact to a relative delta^2 / 24 < 1e-13
    safe_delta = torch.where(positive, delta, torch.ones_like(delta))
    log_mid = log_cdf_plus + log_sf_minus + torch.log(-torch.expm1(-safe_delta))
    # where the bin is tiny in standard units (or inv_scale underflows to 0): width times the density at the centre
    centre = (x - loc) * inv_scale
    log_mid_density = centre - log_scale - 2 * F.softplus(centre) - math.log(n1)
    log_mid = torch.where(positive, log_mid, log_mid_density)
    return torch.where(k <= 0, log_cdf_plus, torch.where(k >= n1, log_sf_minus, log_mid))


def _sample_discretized_logistic(loc, log_scale, num_bins):
    """Exact: draw the continuous logistic by inversion, then return the centre of the bin it falls in."""
    n1 = num_bins - 1
    finfo = torch.finfo(loc.dtype)
    u = torch.rand_like(loc).clamp(finfo.tiny, 1 - finfo.eps)
    y = loc + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return torch.round(y * n1).clamp(0, n1) / n1


class DiscretizedLogistic(TorchDistribution):
    r"""
    A logistic distribution discretised to the :math:`n` values :math:`x\in\{0, \frac{1}{n-1}, \dots, 1\}` of an
    image scaled to [0, 1] (``num_bins`` :math:`n = 256` for 8 bits), as in the IAF VAE (Kingma et al. 2016) and
    PixelCNN++ (Salimans et al. 2017). With :math:`h = \frac{1}{2(n-1)}` the half-width of a bin and
    :math:`\sigma(\cdot)` the logistic sigmoid (the CDF of the standard logistic),

        :math:`P(x) = \sigma\left(\frac{x + h - \mu}{s}\right) - \sigma\left(\frac{x - h - \mu}{s}\right)`,
        :math:`0 < x < 1`,

        :math:`P(0) = \sigma\left(\frac{h - \mu}{s}\right)`,
        :math:`P(1) = 1 - \sigma\left(\frac{1 - h - \mu}{s}\right)`,

    i.e. the end bins take the mass of :math:`(-\infty, h]` and :math:`[1-h, \infty)`, so the probabilities sum to
    one exactly. ``loc`` is :math:`\mu`, ``log_scale`` is :math:`\log s`.

    The log-probability of an interior bin, with :math:`a = \frac{x+h-\mu}{s} > b = \frac{x-h-\mu}{s}`, uses the
    identity :math:`\sigma(a) - \sigma(b) = \sigma(a)\,\sigma(-b)\,(1 - e^{-(a-b)})`:

        :math:`\log P(x) = \log\sigma(a) + \log\sigma(-b) + \log(1 - e^{-(a-b)})`,

    three terms without cancellation, exact in both tails (PixelCNN++ subtracts the two CDFs and falls back to the
    bin-centre density when the difference drops below 1e-5, losing the tails). Only where the bin width in standard
    units :math:`\delta = a - b = \frac{1}{(n-1)s}` is below 1e-6 (a huge scale, or ``exp(-log_scale)`` underflowing
    to 0, as for ``log_scale`` above about 103 in float32, where the difference itself underflows) is the bin-centre
    rule used, :math:`\log P(x) \approx \log\frac{1}{n-1} + \log p_{\mathrm{logistic}}(x)`: its relative error
    is below :math:`\delta^2/24 < 10^{-13}`, and it keeps the gradient finite where :math:`1/\delta` would overflow.
    The edge bins use :math:`\log\sigma(a)` and :math:`\log\sigma(-b)`, also exact.
    Gradients are finite everywhere (no ``where`` over a non-finite branch). PixelCNN++ clamps ``log_scale`` at -7 on
    its [-1, 1] scale, which is :math:`-7-\log 2` on this [0, 1] scale; that is left to the decoder
    (:data:`zoo.likelihoods_discretized.LOG_SCALE_MIN`).

    ``sample`` is exact: the continuous logistic is drawn by inversion and mapped to the centre of its bin (clamped
    into [0, 1]); it is not reparameterisable. ``enumerate_support`` gives the grid, so the distribution also works
    with Pyro's enumeration. Each pixel is one draw (event shape ``()``); use ``.to_event(3)`` for an image.

    Example usage:

    >>> p = DiscretizedLogistic(torch.zeros(2, 1, 28, 28), torch.full((2, 1, 28, 28), -3.0)).to_event(3)
    >>> x = p.sample()  # (2, 1, 28, 28), values in {0, 1/255, ..., 1}
    >>> p.log_prob(x).shape
    torch.Size([2])

    :param torch.Tensor loc: location :math:`\mu` (in the units of the [0, 1] scaled image).
    :param torch.Tensor log_scale: :math:`\log s`.
    :param int num_bins: number of values, 256 for 8-bit images.
    """

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    has_enumerate_support = True

    def __init__(self, loc, log_scale, num_bins: int = 256, validate_args=None):
        if int(num_bins) < 2:
            raise ValueError("num_bins must be >= 2")
        self.loc, self.log_scale = broadcast_all(loc, log_scale)
        self.num_bins = int(num_bins)
        super().__init__(self.loc.shape, torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return _DiscretizedUnitInterval(self.num_bins)

    @property
    def scale(self):
        return self.log_scale.exp()

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.log_scale = self.log_scale.expand(batch_shape)
        new.num_bins = self.num_bins
        super(DiscretizedLogistic, new).__init__(batch_shape, torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return _discretized_logistic_log_prob(value, self.loc, self.log_scale, self.num_bins)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            return _sample_discretized_logistic(self.loc.expand(shape), self.log_scale.expand(shape), self.num_bins)

    def enumerate_support(self, expand=True):
        grid = discretized_grid(self.num_bins, dtype=self.loc.dtype, device=self.loc.device)
        grid = grid.reshape((-1,) + (1,) * len(self.batch_shape))
        return grid.expand((-1,) + self.batch_shape) if expand else grid

    @property
    def mean(self):
        """Exact, by summing over the grid (memory: ``num_bins`` times the batch)."""
        grid = self.enumerate_support(expand=False)
        return (grid * self.log_prob(grid).exp()).sum(0)


class DiscretizedMixLogistic(TorchDistribution):
    r"""
    A mixture of :math:`K` discretised logistics (:class:`DiscretizedLogistic`) per pixel, the likelihood of
    PixelCNN++ (Salimans et al. 2017):

        :math:`P(x) = \sum_{k=1}^{K}\pi_k\,P_{\mathrm{DL}}(x\mid\mu_k, s_k)`,
        :math:`\pi = \mathrm{softmax}(\text{logit\_probs})`,

    computed as :math:`\operatorname{logsumexp}_k(\log\pi_k + \log P_{\mathrm{DL}}(x\mid\mu_k,s_k))`. The component
    axis is the **last** axis of the three parameters (move it there with ``.movedim(1, -1)`` from a network's
    ``(B, K, H, W)`` output); the batch shape is the broadcast of the rest and each pixel is one event (event shape
    ``()``). The channels of a pixel are independent given the parameters: PixelCNN++'s linear coupling of the
    colour channels within a pixel is not included. ``sample`` draws the component, then the discretised logistic,
    exactly.

    :param torch.Tensor logit_probs: unnormalised log mixture weights, shape ``(..., K)``.
    :param torch.Tensor locs: component locations, ``(..., K)``.
    :param torch.Tensor log_scales: component log scales, ``(..., K)``.
    :param int num_bins: number of values, 256 for 8-bit images.
    """

    arg_constraints = {"logit_probs": constraints.real_vector, "locs": constraints.real_vector,
                       "log_scales": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, logit_probs, locs, log_scales, num_bins: int = 256, validate_args=None):
        if int(num_bins) < 2:
            raise ValueError("num_bins must be >= 2")
        shape = torch.broadcast_shapes(logit_probs.shape, locs.shape, log_scales.shape)
        if len(shape) < 1:
            raise ValueError("the parameters need a component axis (the last one)")
        self.logit_probs = logit_probs.expand(shape)
        self.locs = locs.expand(shape)
        self.log_scales = log_scales.expand(shape)
        self.num_bins = int(num_bins)
        super().__init__(shape[:-1], torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return _DiscretizedUnitInterval(self.num_bins)

    @property
    def num_components(self) -> int:
        return self.locs.shape[-1]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedMixLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + (self.num_components,)
        new.logit_probs = self.logit_probs.expand(shape)
        new.locs = self.locs.expand(shape)
        new.log_scales = self.log_scales.expand(shape)
        new.num_bins = self.num_bins
        super(DiscretizedMixLogistic, new).__init__(batch_shape, torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_components = _discretized_logistic_log_prob(value.unsqueeze(-1), self.locs, self.log_scales, self.num_bins)
        return torch.logsumexp(torch.log_softmax(self.logit_probs, dim=-1) + log_components, dim=-1)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            logits = self.logit_probs.expand(shape + (self.num_components,))
            component = torch.distributions.Categorical(logits=logits, validate_args=False).sample().unsqueeze(-1)
            loc = self.locs.expand(logits.shape).gather(-1, component).squeeze(-1)
            log_scale = self.log_scales.expand(logits.shape).gather(-1, component).squeeze(-1)
            return _sample_discretized_logistic(loc, log_scale, self.num_bins)

    def enumerate_support(self, expand=True):
        grid = discretized_grid(self.num_bins, dtype=self.locs.dtype, device=self.locs.device)
        grid = grid.reshape((-1,) + (1,) * len(self.batch_shape))
        return grid.expand((-1,) + self.batch_shape) if expand else grid

    @property
    def mean(self):
        """Exact, by summing over the grid (memory: ``num_bins`` times the batch times K)."""
        grid = self.enumerate_support(expand=False)
        return (grid * self.log_prob(grid).exp()).sum(0)
