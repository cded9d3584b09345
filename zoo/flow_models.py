"""Flow density models: NICE, RealNVP, Glow and MAF as Pyro models with an exact likelihood and no latent sites.

Each model is a bijection f: data -> latent written in the papers' order (``self.flow``, transforms of
:mod:`zoo.transforms` and Pyro), and the Pyro model is

    with pyro.plate("data", B):  pyro.sample("x", TransformedDistribution(base, as_generative(flow)), obs=v)

with ``base`` a standard normal (NICE: also the logistic of the paper) of event shape (D,) and ``v`` the data after
dequantization, so log p(v) = log p_base(f(v)) + log|det df/dv| exactly (change of variables). There is no latent
site: the guide is the empty guide ``none`` (:mod:`guides.empty`, the default of these models on the command line),
and the ``elbo`` objective then equals -log p(v) exactly (there is no q to subtract), as does ``mle``
(:mod:`inference.mle`); the zoo's evaluation (:func:`inference.evaluation.importance_sample`) gives log w = log p(v)
for every particle, so its log-likelihood is the exact one whatever K (``zoo evaluate`` uses K = 1 for them).

**8-bit data and what the log-likelihood means.** With ``dequantize="auto"`` a model built for images (``image_shape``
given, e.g. mnist5k with ``--binarize none``: grey levels k/255) treats its data as 8-bit levels; vector data (the 2-D
toy sets) are modelled as they are. For 8-bit data the forward pass dequantizes inside the model,

    v = (k + u) / 256,   u ~ U[0, 1)^D,   k = round(255 x),

* in training mode with fresh noise from the global torch RNG at every call, i.e. redrawn at every training step (and
  saved with the RNG state in checkpoints, so a resumed run sees the same noise);
* in evaluation mode (``model.eval()``) with a fixed noise that is a seeded hash of the point's levels and the pixel
  index (:func:`fixed_uniform_noise`), so a test point gets the same v whatever its batch, batch size or order, and the
  reported log-likelihood is reproducible. It is one unbiased draw of the dequantization bound E_u[log p(v)].

The log-likelihood a model reports (``log_prob``, the ``x`` site, ``eval.json``'s ``nll``) is the log-density in nats
of the dequantized data v in [0, 1]^D, logit pre-processing Jacobian included (RealNVP, Glow, MAF map [0, 1] to the
real line with :class:`~zoo.transforms.LogitTransform` as their first transform, so its log-det is part of log p(v)).
It is converted to bits/dim of the 8-bit data by :func:`zoo.transforms.bits_per_dim`,
bpd = -log p(v) / (D ln 2) + 8, an upper bound on the discrete model's -log2 P(k) / D (Theis et al. 2016); models say
so with ``dequantization_bins = 256`` and ``zoo evaluate`` adds the 8 there. Binarized data (all values 0 or 1) are
refused: a continuous density of binary data is meaningless; these models default to ``--binarize none``.

A log-likelihood that is NaN or infinite is never dropped: in evaluation it raises :class:`NonFiniteLogLikelihood`,
in training the run stops with :class:`~zoo.errors.TrainingDiverged` at the next checkpoint or epoch end (no host sync
per step), before that state is written.

Sampling: :meth:`FlowModel.sample` draws z ~ base scaled by a temperature T (z = T * eps; T = 0 gives the base mean)
and returns f^{-1}(z) (for 8-bit models: values in about [0, 1], not re-quantized). :func:`interpolate` interpolates
two data points in z.

Sizes (``--hidden``, ``--flow-depth``, ``--num-scales``; ``realnvp``/``glow`` on images read ``hidden[0]`` as the
conditioner's channels). Defaults: nice 4 couplings with MLPs of 5 x 1000 and maf 5 MADEs of 1024 units (the papers'
MNIST architectures); realnvp on images 2 scales, 3 couplings per stage, 32 channels and 1 residual block, on vectors 6
couplings with MLPs of 256, 256; glow 2 levels of 6 steps, 64 channels, conv-ReLU-conv conditioner -- scaled down from
the papers' (RealNVP: 64 channels, 8 blocks; Glow: K = 32 steps, L = 3 levels, 512 channels) to train on a CPU.

Papers: Dinh, Krueger & Bengio 2015 (NICE); Dinh, Sohl-Dickstein & Bengio 2017 (RealNVP); Kingma & Dhariwal 2018
(Glow); Papamakarios, Pavlakou & Murray 2017 (MAF); Theis, van den Oord & Bethge 2016 (dequantization).
"""
import math
from typing import List, Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import AffineAutoregressive, AffineCoupling, BatchNorm
from pyro.distributions.transforms.utils import clamp_preserve_gradients
from pyro.nn import AutoRegressiveNN, DenseNN
from torch import nn

from zoo.errors import ConfigError, DataError, ZooError
from zoo.model import MODELS, ZooModel, data_plate
from zoo.transforms import (ActNorm, AdditiveCoupling, AffineCoupling2d, DiagonalScaling, InvertibleConv1x1,
                            LogitTransform, MultiScaleSplit, Squeeze, as_generative, dequantize)
from zoo.transforms._base import FlowTransform, register_parts

BASES = ("normal", "logistic")
DEQUANTIZE = ("auto", "8bit", "none")
#: the command-line defaults these models declare (honoured by ``zoo train`` when the option is not given)
CLI_DEFAULTS = dict(guide="none", binarize="none", hidden=None)


class NonFiniteLogLikelihood(ZooError, FloatingPointError):
    """A flow's log-likelihood came out NaN or infinite; it is an error, never dropped from an estimate."""


class Reverse(FlowTransform):
    """Reverses the order of the coordinates (MAF's order reversal between layers; alternates coupling halves)."""

    def _call(self, x):
        return x.flip(-1)

    def _inverse(self, y):
        return y.flip(-1)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-1])


class FlowDistribution(dist.TransformedDistribution):
    """``TransformedDistribution`` whose ``log_prob`` raises on a NaN or infinite value instead of returning it, when
    no gradient is being taken (evaluation, validation, sampling code). A training step is not checked here: that
    would be a host-device synchronisation per step; the Trainer checks the summed loss where it reads it anyway."""

    def log_prob(self, value):
        lp = super().log_prob(value)
        if not (torch.is_grad_enabled() and lp.requires_grad) and not bool(torch.isfinite(lp).all()):
            bad = int((~torch.isfinite(lp)).sum())
            raise NonFiniteLogLikelihood(
                f"{bad} of {lp.numel()} flow log-likelihoods are NaN or infinite (diverged training? try a smaller "
                "--lr); nothing is dropped")
        return lp


def fixed_uniform_noise(x: torch.Tensor, bins: int = 256, seed: int = 0) -> torch.Tensor:
    """Deterministic U[0, 1) noise of x's shape (..., D): a seeded integer hash of each point's levels and of the
    coordinate index, so the same point always gets the same noise, whatever batch it is in."""
    k = torch.round(x * (bins - 1)).long()
    d = x.shape[-1]
    gen = torch.Generator().manual_seed(1_234_567 + int(seed))
    weights = torch.randint(1, 2**20, (d,), generator=gen).to(x.device)
    m = 2**31
    row = ((k + 1) * weights).sum(-1, keepdim=True) % m  # one key per point
    h = (row * 1_103_515_245 + torch.arange(d, device=x.device) * 40_503 + 12_345 + int(seed)) % m
    for mult in (0x2C1B3C6D, 0x297A2D39, 0x5BD1E995):  # xorshift-multiply rounds (all values stay below 2^62)
        h = ((h ^ (h >> 15)) * (mult % m)) % m
    h = h ^ (h >> 13)
    return (h.to(torch.float64) / m).to(x.dtype)


class _NoStaleCache:
    """Mixin for Pyro transforms built with ``cache_size=1`` (AffineAutoregressive, AffineCoupling, BatchNorm): torch's
    cache returns the remembered output whenever the *same input tensor* comes back, even after an optimiser step
    changed the parameters (a full-batch tensor scored twice gets a stale answer). Here every call computes afresh and
    only records (x, y), which the log-det still uses to find the log-scale of the pass that produced y."""

    def __call__(self, x):
        y = self._call(x)
        if self._cache_size:
            self._cached_x_y = x, y
        return y

    def _inv_call(self, y):
        x = self._inverse(y)
        if self._cache_size:
            self._cached_x_y = x, y
        return x


class MADELayer(_NoStaleCache, AffineAutoregressive):
    """Pyro's ``AffineAutoregressive`` without stale cached outputs, and an inverse (sampling: D sequential MADE
    passes) in the input's dtype."""

    def _inverse(self, y):
        x = torch.zeros_like(y)
        log_scale = None
        for idx in self.arn.permutation.tolist():
            mean, log_scale = self.arn(x)
            log_scale = clamp_preserve_gradients(log_scale, self.log_scale_min_clip, self.log_scale_max_clip)
            x = x.clone()
            x[..., idx] = (y[..., idx] - mean[..., idx]) * torch.exp(-log_scale[..., idx])
        mean, log_scale = self.arn(x)  # the log-scale at the final x, for the log-det
        self._cached_log_scale = clamp_preserve_gradients(log_scale, self.log_scale_min_clip,
                                                          self.log_scale_max_clip)
        return x


class CouplingLayer(_NoStaleCache, AffineCoupling):
    """Pyro's ``AffineCoupling`` without stale cached outputs."""


class BatchNormLayer(_NoStaleCache, BatchNorm):
    """Pyro's ``BatchNorm`` without stale cached outputs."""


def zero_last_layer(net: nn.Module) -> nn.Module:
    """Zero the output layer of a Pyro ``DenseNN`` / ``AutoRegressiveNN`` so that its affine layer starts as the
    identity (as Glow's zero-initialised couplings do); random output layers stacked five deep blow the initial
    log-likelihood up to ~1e10 nats on logit-MNIST."""
    nn.init.zeros_(net.layers[-1].weight)
    nn.init.zeros_(net.layers[-1].bias)
    return net


class FlowModel(ZooModel):
    """A density p(v) = TransformedDistribution(base, as_generative(flow)) of the (dequantized) data; no latents."""

    default_guide = "none"
    default_binarize = "none"
    #: no latent sites: log w = log p(x) exactly, one importance sample suffices
    exact_likelihood = True
    #: not run at build time: glow's actnorm initialises itself from the first batch it sees, a training batch
    traced_at_build = False

    def __init__(self, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None, base: str = "normal",
                 dequantize: str = "auto", eval_seed: int = 0):
        super().__init__(data_dim, image_shape)
        if base not in BASES:
            raise ConfigError(f"base distribution must be one of {', '.join(BASES)}, got {base!r}")
        if dequantize not in DEQUANTIZE:
            raise ConfigError(f"dequantize must be one of {', '.join(DEQUANTIZE)}, got {dequantize!r}")
        if self.image_shape is not None and math.prod(self.image_shape) != data_dim:
            raise ConfigError(f"image shape {self.image_shape} does not hold {data_dim} values")
        self.base, self.eval_seed = base, int(eval_seed)
        eight_bit = dequantize == "8bit" or (dequantize == "auto" and self.image_shape is not None)
        #: 256 when the data are 8-bit levels dequantized inside the model (bits/dim then adds log2(256) = 8)
        self.dequantization_bins = 256 if eight_bit else None
        self.flow_modules = nn.ModuleList()
        self.flow: List = []

    def set_flow(self, transforms: Sequence):
        """Install the flow (data -> latent, papers' order) and register the modules behind it."""
        self.flow_modules = nn.ModuleList()
        self.flow = register_parts(self.flow_modules, transforms)
        self.generative = as_generative(self.flow)

    # ------------------------------------------------------------------------------------------- contract
    def latent_sites(self):
        return []

    def make_encoder(self):
        raise ConfigError(f"model {self._name()} has no latent variables, so an amortized guide has nothing to infer; "
                          "use --guide none (the default for flow models)")

    def _name(self):
        return type(self).__name__.lower()

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects (N, {self.data_dim})")
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{where} holds NaN or infinite values")
        if self.dequantization_bins is None:
            return
        bins = self.dequantization_bins
        if bool(((x == 0) | (x == 1)).all()):
            raise DataError(f"{where} is binary (binarized?); a flow models a continuous density of 8-bit grey "
                            "levels: pass --binarize none")
        scaled = x * (bins - 1)
        if x.min() < 0 or x.max() > 1 or not bool(((scaled - scaled.round()).abs() <= 1e-3).all()):
            raise DataError(f"{where} is not 8-bit grey levels k/{bins - 1} in [0, 1], which model "
                            f"{self._name()} dequantizes; use such data (e.g. mnist5k --binarize none)")

    # ------------------------------------------------------------------------------------------- density
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """The data the density is of: x itself, or for 8-bit data v = (k + u)/256 (fresh u in training mode,
        the fixed seeded u of :func:`fixed_uniform_noise` in evaluation mode)."""
        bins = self.dequantization_bins
        if bins is None:
            return x
        if self.training:
            return dequantize(x, bins=bins, check=False)
        return (torch.round(x * (bins - 1)) + fixed_uniform_noise(x, bins, self.eval_seed)) / bins

    def base_dist(self, like: torch.Tensor, temperature: float = 1.0):
        loc = like.new_zeros(self.data_dim)
        scale = like.new_full((self.data_dim,), float(temperature))
        # no argument validation: a NaN latent must reach FlowDistribution.log_prob's check, not Normal's
        d = (dist.Normal(loc, scale, validate_args=False) if self.base == "normal"
             else dist.Logistic(loc, scale, validate_args=False))
        return d.to_event(1)

    def distribution(self, like: torch.Tensor) -> FlowDistribution:
        """p(v): the base pushed through f^{-1} (a Pyro distribution of event shape (D,))."""
        return FlowDistribution(self.base_dist(like), self.generative)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        v = self.preprocess(x)
        with data_plate(x):
            return pyro.sample("x", self.distribution(x), obs=v)

    def log_prob(self, x: torch.Tensor, preprocessed: bool = False) -> torch.Tensor:
        """log p(v) per data point (B,), in nats; ``preprocessed=True`` when x is already v."""
        v = x if preprocessed else self.preprocess(x)
        return self.distribution(x).log_prob(v)

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """z = f(v) for preprocessed data v."""
        for t in self.flow:
            v = t(v)
        return v

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """v = f^{-1}(z)."""
        for t in self.generative:
            z = t(z)
        return z

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True, temperature: float = 1.0) -> torch.Tensor:
        """n draws f^{-1}(T * eps), eps ~ base (T = 0: the base mean, zero, mapped through the flow). ``mean`` is
        accepted for the contract's signature; a flow has no decoder mean to take."""
        if temperature < 0:
            raise ConfigError(f"temperature must be non-negative, got {temperature}")
        if temperature == 0:
            z = like.new_zeros(n, self.data_dim)
        else:
            z = self.base_dist(like, temperature).sample((n,))
        return self.decode(z)

    @torch.no_grad()
    def decode_mean(self, trace_sites: dict) -> torch.Tensor:
        """A flow reconstructs exactly: the observed value itself."""
        return trace_sites["x"]["value"]

    def extra_repr(self):
        return (f"data_dim={self.data_dim}, image_shape={self.image_shape}, base={self.base}, "
                f"dequantization_bins={self.dequantization_bins}")


def _logit(model: FlowModel, logit: Optional[bool], alpha: float) -> list:
    """The logit pre-processing (only for data in [0, 1]: the 8-bit models)."""
    use = model.dequantization_bins is not None if logit is None else bool(logit)
    if use and model.dequantization_bins is None:
        raise ConfigError(f"model {model._name()}: the logit pre-processing needs data in [0, 1] (8-bit levels); "
                          "it is off for real-valued data")
    return [LogitTransform(alpha)] if use else []


def _hidden(hidden, default):
    hidden = tuple(int(h) for h in (default if hidden is None else hidden))
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"--hidden needs at least one positive width for a flow's networks, got {hidden}")
    return hidden


def _depth(flow_depth, default, what):
    depth = default if flow_depth is None else int(flow_depth)
    if depth < 1:
        raise ConfigError(f"--flow-depth ({what}) must be positive, got {depth}")
    return depth


# ============================================================================================================ NICE
@MODELS.register("nice", paper="Dinh, Krueger & Bengio 2015 (NICE)",
                 summary="additive coupling layers (alternating partitions, MLP m) + diagonal scaling; "
                         "logistic or normal base", **CLI_DEFAULTS)
class NICE(FlowModel):
    """NICE: z = S * g_L(...g_1(v)), g_l additive couplings y_I2 = x_I2 + m_l(x_I1) with alternating partitions (even /
    odd coordinates), S = exp(s) diagonal; log|det| = sum s. ``flow_depth`` coupling layers (4 in the paper), m an MLP
    of widths ``hidden`` (paper: 5 x 1000). Base: ``logistic`` (the paper's for MNIST) or ``normal``. No logit:
    8-bit data are modelled in [0, 1] as in the paper."""

    def __init__(self, data_dim: int, hidden: Optional[Sequence[int]] = None, flow_depth: Optional[int] = None,
                 base: str = "logistic", partition: str = "alternate", dequantize: str = "auto",
                 image_shape: Optional[Tuple[int, int, int]] = None, eval_seed: int = 0):
        super().__init__(data_dim, image_shape, base, dequantize, eval_seed)
        if data_dim < 2:
            raise ConfigError("NICE couples two halves of the data: it needs data_dim >= 2")
        hidden, depth = _hidden(hidden, (1000,) * 5), _depth(flow_depth, 4, "coupling layers")
        self.set_flow([AdditiveCoupling(data_dim, hidden, partition=partition, parity=i % 2) for i in range(depth)]
                      + [DiagonalScaling(data_dim)])


# ============================================================================================================ MAF
@MODELS.register("maf", paper="Papamakarios, Pavlakou & Murray 2017 (MAF)",
                 summary="masked autoregressive flow: MADE affine layers (Pyro AffineAutoregressive) with order "
                         "reversals, optional batch norm; vector data", **CLI_DEFAULTS)
class MAF(FlowModel):
    """MAF: ``flow_depth`` MADE layers (5 in the paper) u = (x - mu(x_<)) exp(-alpha(x_<)), in Pyro's parameterisation
    ``AffineAutoregressive`` used data -> latent (one parallel MADE pass per layer; sampling inverts it, D passes),
    the order reversed between layers, optional Pyro ``BatchNorm`` (normalising direction) after each layer. Images
    are treated as vectors; 8-bit data get the logit pre-processing with alpha = 1e-6 as in the paper."""

    def __init__(self, data_dim: int, hidden: Optional[Sequence[int]] = None, flow_depth: Optional[int] = None,
                 batchnorm: bool = False, logit: Optional[bool] = None, logit_alpha: float = 1e-6,
                 dequantize: str = "auto", image_shape: Optional[Tuple[int, int, int]] = None, eval_seed: int = 0):
        super().__init__(data_dim, image_shape, "normal", dequantize, eval_seed)
        if data_dim < 2:
            raise ConfigError("MAF needs data_dim >= 2")
        hidden, depth = _hidden(hidden, (1024,)), _depth(flow_depth, 5, "MADE layers")
        if min(hidden) < data_dim:
            raise ConfigError(f"MAF's MADE needs hidden widths of at least data_dim = {data_dim} (each unit "
                              f"sees a prefix of the inputs), got --hidden {','.join(map(str, hidden))}")
        flow = _logit(self, logit, logit_alpha)
        for i in range(depth):
            if i > 0:
                flow.append(Reverse())
            made = zero_last_layer(AutoRegressiveNN(data_dim, list(hidden), param_dims=[1, 1],
                                                    permutation=torch.arange(data_dim)))
            flow.append(MADELayer(made))
            if batchnorm:
                flow.append(BatchNormLayer(data_dim).inv)
        self.set_flow(flow)


# ============================================================================================================ RealNVP
def _realnvp_scale(shape, level, num_scales, depth, channels, blocks) -> list:
    """One scale of RealNVP: ``depth`` checkerboard couplings, squeeze, ``depth`` channel couplings, factor out half
    and recurse; the last scale is ``depth + 1`` checkerboard couplings (paper: 3, 3, and 4)."""
    kw = dict(hidden_channels=channels, num_blocks=blocks, scale="tanh")
    if level == num_scales - 1:
        return [AffineCoupling2d(shape, "checkerboard", i % 2, **kw) for i in range(depth + 1)]
    out = [AffineCoupling2d(shape, "checkerboard", i % 2, **kw) for i in range(depth)]
    squeeze = Squeeze(shape)
    s = squeeze.out_shape
    out += [squeeze] + [AffineCoupling2d(s, "channel", i % 2, **kw) for i in range(depth)]
    inner = _realnvp_scale((s[0] // 2, s[1], s[2]), level + 1, num_scales, depth, channels, blocks)
    return out + [MultiScaleSplit(s, inner)]


@MODELS.register("realnvp", paper="Dinh, Sohl-Dickstein & Bengio 2017 (RealNVP)",
                 summary="affine couplings: images -- logit, checkerboard/channel masks, squeeze, multi-scale; "
                         "vectors -- Pyro AffineCoupling with alternating halves", **CLI_DEFAULTS)
class RealNVP(FlowModel):
    """RealNVP. ``architecture="image"`` (default when the data are images): logit pre-processing (alpha 0.05), then
    ``num_scales`` scales of [``flow_depth`` checkerboard couplings, squeeze, ``flow_depth`` channel couplings, factor
    out half], the last one ``flow_depth + 1`` checkerboard couplings; s, t from a small ResNet of ``hidden[0]``
    channels and ``num_blocks`` residual blocks, rescaled tanh on s. (No batch norm in the flow, unlike the paper.)
    ``architecture="vector"`` (default for vector data, e.g. the 2-D toy sets): ``flow_depth`` Pyro
    ``AffineCoupling`` layers (MLP of widths ``hidden``) with the coordinate order reversed between them, so the
    halves alternate."""

    def __init__(self, data_dim: int, hidden: Optional[Sequence[int]] = None, flow_depth: Optional[int] = None,
                 num_scales: Optional[int] = None, num_blocks: int = 1, architecture: str = "auto",
                 logit: Optional[bool] = None, logit_alpha: float = 0.05, dequantize: str = "auto",
                 image_shape: Optional[Tuple[int, int, int]] = None, eval_seed: int = 0):
        super().__init__(data_dim, image_shape, "normal", dequantize, eval_seed)
        if architecture == "auto":
            architecture = "image" if self.image_shape is not None else "vector"
        if architecture not in ("image", "vector"):
            raise ConfigError(f"realnvp architecture must be auto, image or vector, got {architecture!r}")
        self.architecture = architecture
        flow = _logit(self, logit, logit_alpha)
        if architecture == "vector":
            if data_dim < 2:
                raise ConfigError("RealNVP couples two halves of the data: it needs data_dim >= 2")
            hidden, depth = _hidden(hidden, (256, 256)), _depth(flow_depth, 6, "coupling layers")
            split = data_dim // 2
            for i in range(depth):
                if i > 0:
                    flow.append(Reverse())
                net = zero_last_layer(DenseNN(split, list(hidden), param_dims=[data_dim - split, data_dim - split]))
                flow.append(CouplingLayer(split, net))
        else:
            if self.image_shape is None:
                raise ConfigError("realnvp's image architecture needs image data with a (C, H, W) shape; these data "
                                  "are vectors (use the vector architecture, the default for them)")
            channels = _hidden(hidden, (32,))[0]
            depth = _depth(flow_depth, 3, "couplings per stage")
            num_scales = _num_scales(self.image_shape, num_scales, 2, squeeze_last=False, model="realnvp")
            flow += _realnvp_scale(self.image_shape, 0, num_scales, depth, channels, int(num_blocks))
        self.set_flow(flow)


def _num_scales(shape, num_scales, default, squeeze_last: bool, model: str) -> int:
    n = default if num_scales is None else int(num_scales)
    if n < 1:
        raise ConfigError(f"--num-scales must be positive, got {n}")
    squeezes = n if squeeze_last else n - 1
    c, h, w = shape
    if h % (2 ** squeezes) or w % (2 ** squeezes):
        raise ConfigError(f"{model} with {n} scales squeezes {squeezes} times, which needs height and width "
                          f"divisible by {2 ** squeezes}; the images are {h}x{w}: use fewer --num-scales")
    return n


# ============================================================================================================ Glow
def _glow_level(shape, level, num_scales, depth, channels, blocks, learned_prior) -> list:
    """Squeeze, ``depth`` steps of [actnorm, invertible 1x1 conv, affine coupling], then (except at the last level)
    Glow's learned prior on the factored-out half (a channel coupling) and the split, recursing on the other half."""
    squeeze = Squeeze(shape)
    s = squeeze.out_shape
    kw = dict(hidden_channels=channels, num_blocks=blocks, scale="sigmoid")
    out = [squeeze]
    for _ in range(depth):
        out += [ActNorm(s), InvertibleConv1x1(s), AffineCoupling2d(s, "channel", 0, **kw)]
    if level == num_scales - 1:
        return out
    if learned_prior:
        out.append(AffineCoupling2d(s, "channel", 0, **kw))
    inner = _glow_level((s[0] // 2, s[1], s[2]), level + 1, num_scales, depth, channels, blocks, learned_prior)
    return out + [MultiScaleSplit(s, inner)]


@MODELS.register("glow", paper="Kingma & Dhariwal 2018 (Glow)",
                 summary="actnorm (data-dependent init), invertible 1x1 conv (LU), affine coupling, multi-scale; "
                         "images", **CLI_DEFAULTS)
class Glow(FlowModel):
    """Glow: logit pre-processing (alpha 0.05), then ``num_scales`` levels of [squeeze, ``flow_depth`` steps of
    (actnorm, invertible 1x1 convolution with the LU parameterisation, affine coupling with sigmoid scale),
    split], the split's learned prior p(z_f | h) written as a channel coupling on the factored-out half (see
    :class:`~zoo.transforms.MultiScaleSplit`). Actnorm is initialised from the first batch it sees (the first training
    batch). Conditioner: ``hidden[0]`` channels, ``num_blocks`` residual blocks (0: conv-ReLU-conv, close to Glow's)."""

    def __init__(self, data_dim: int, hidden: Optional[Sequence[int]] = None, flow_depth: Optional[int] = None,
                 num_scales: Optional[int] = None, num_blocks: int = 0, learned_prior: bool = True,
                 logit: Optional[bool] = None, logit_alpha: float = 0.05, dequantize: str = "auto",
                 image_shape: Optional[Tuple[int, int, int]] = None, eval_seed: int = 0):
        super().__init__(data_dim, image_shape, "normal", dequantize, eval_seed)
        if self.image_shape is None:
            raise ConfigError("glow needs image data with a (C, H, W) shape; for vector data use maf, nice or "
                              "realnvp")
        channels = _hidden(hidden, (64,))[0]
        depth = _depth(flow_depth, 6, "steps per level")
        num_scales = _num_scales(self.image_shape, num_scales, 2, squeeze_last=True, model="glow")
        flow = _logit(self, logit, logit_alpha)
        flow += _glow_level(self.image_shape, 0, num_scales, depth, channels, int(num_blocks), learned_prior)
        self.set_flow(flow)


# ============================================================================================================ helpers
@torch.no_grad()
def interpolate(model: FlowModel, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8,
                spherical: bool = False) -> torch.Tensor:
    """Interpolate data points in the latent space z = f(v): f^{-1}(z_t) for ``steps`` values of t in [0, 1] (linear,
    or spherical with the norm interpolated linearly). x0, x1 of shape (D,) give (steps, D); batches (P, D) give
    (P, steps, D) in one decoding pass (MAF inverts sequentially, so batching matters). Data go through the model's
    evaluation-mode dequantization."""
    was_training = model.training
    model.eval()
    single = x0.dim() == 1
    a, b = x0.reshape(-1, model.data_dim), x1.reshape(-1, model.data_dim)
    try:
        z = model.encode(model.preprocess(torch.cat([a, b])))
        z0, z1 = z[: len(a)].unsqueeze(1), z[len(a):].unsqueeze(1)  # (P, 1, D)
        t = torch.linspace(0, 1, steps, dtype=z.dtype, device=z.device).view(1, -1, 1)
        if spherical:
            n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
            u0, u1 = z0 / n0, z1 / n1
            omega = torch.arccos((u0 * u1).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
            direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
            zt = direction * ((1 - t) * n0 + t * n1)
        else:
            zt = (1 - t) * z0 + t * z1
        out = model.decode(zt.reshape(-1, model.data_dim)).reshape(len(a), steps, model.data_dim)
        return out[0] if single else out
    finally:
        model.train(was_training)
