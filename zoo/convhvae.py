"""The convolutional two-layer hierarchical VAE of Tomczak & Welling 2018 ("VAE with a VampPrior", convHVAE columns).

    z2 ~ p(z2)                                  (``--prior``, the VampPrior included, on the top layer)
    z1 | z2 ~ N(mu(z2), diag sigma(z2)^2)       (gated dense layers; log-variance squashed to [-6, 2], as in the paper)
    x | z1, z2 ~ p(x | g(z1, z2))               (``--likelihood``: Bernoulli, Gaussian, discretized logistic, ...)

Image data only (``image_shape`` (C, H, W) from the data set; any H, W: 28x28 MNIST, 28x20 Frey faces, 8x8 digits).

Networks (the paper's gated layers, :mod:`zoo.networks.gated`):

* encoder h(x) (:meth:`make_encoder`, so every guide -- diagonal, the flows -- puts its heads on it): the paper's
  q(z2|x) convolution stack, gated convolutions 7x7 (stride 1), 3x3 (stride 2), 5x5 (stride 1), 3x3 (stride 2), 3x3
  (stride 1) with c, c, 2c, 2c, 6 channels (c = ``conv_channels``, 32 in the paper), then one gated dense layer to
  ``hidden[-1]`` features. The guide samples z2 from h(x) and z1 from [h(x), z2] (the model declares z1 with
  ``depends_on=("z2",)``); the paper's q(z1|x, z2) has its own convolution stack, here the two share h(x), as in
  :mod:`zoo.hvae`.
* decoder g(z1, z2): z1 and z2 each through a gated dense layer (``hidden[0]`` units), jointly through a gated dense
  layer to a (2c, ceil(H/4), ceil(W/4)) map, two gated transposed convolutions (4x4, stride 2) up to (at least) H x W,
  cropped to H x W, a gated 3x3 convolution and a 1x1 convolution to the likelihood's parameters per pixel (the paper
  decodes through a dense layer at full resolution followed by gated convolutions; this decoder upsamples instead).

Sizes: ``latent_dim`` is the top layer z2 (``--latent-dim``), ``latent_dim1`` the lower layer z1 (``--latent-dim1``,
default ``latent_dim``); the paper uses 40 and 40 and 300 hidden units (``--hidden``, default 300 from the CLI:
registry metadata). ``conv_channels`` (c above, Python option) sets the convolutions' width.

Decoder outputs follow the likelihoods' layout (:mod:`zoo.likelihoods`): P parameters per dimension come as P blocks of
D = C H W values each ("parameter-major"), which is what flattening a (P C, H, W) output map gives. The shared building
blocks (:class:`GatedConvEncoder`, :class:`GatedConvDecoder`, :class:`GatedGaussian`) are also used by the PixelCNN
models of :mod:`zoo.pixel_vae`.
"""
import math
from typing import Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError
from zoo.latents import LatentSite
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.gated import GatedConv2d, GatedConvTranspose2d, GatedDense
from zoo.priors import build_prior

#: at most this many floats in one activation map of a convolutional network: larger inputs (the K x B particles of an
#: evaluation) are processed in consecutive chunks, so memory stays bounded whatever K is
ACTIVATION_BUDGET = 2 ** 24


def require_image_shape(model_name: str, data_dim: int, image_shape) -> Tuple[int, int, int]:
    """The (C, H, W) of image data, or a one-line :class:`ConfigError` for vector data."""
    if not image_shape:
        raise ConfigError(f"model {model_name} is convolutional and needs image data (a data set with an image shape "
                          f"such as digits, mnist5k, mnist, frey), but the data are {data_dim}-dimensional vectors; "
                          f"use --model vae or hvae for vector data")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or math.prod(shape) != data_dim or min(shape) < 1:
        raise ConfigError(f"model {model_name}: image shape {shape} does not fold {data_dim}-dimensional data "
                          f"(need (C, H, W) with C*H*W = {data_dim})")
    return shape


def _down(n: int) -> int:
    """Output size of a 3x3, stride 2, padding 1 convolution: ceil(n / 2)."""
    return (n - 1) // 2 + 1


def in_chunks(fn, rows: int, *tensors):
    """fn(*tensors) on the first axis in chunks of ``rows`` (one call when they fit), concatenated."""
    n = tensors[0].shape[0]
    if n <= rows:
        return fn(*tensors)
    return torch.cat([fn(*(t[i:i + rows] for t in tensors)) for i in range(0, n, rows)], dim=0)


class GatedConvEncoder(nn.Module):
    """x (..., C*H*W) -> h (..., out_features): the VampPrior paper's gated convolution stack, then a gated dense layer.

    Attribute ``out_features`` as :meth:`zoo.model.ZooModel.make_encoder` requires; any number of leading axes."""

    def __init__(self, image_shape: Tuple[int, int, int], out_features: int, channels: int = 32):
        super().__init__()
        c_in, height, width = image_shape
        self.image_shape, self.out_features = tuple(image_shape), out_features
        c = channels
        self.convs = nn.Sequential(
            GatedConv2d(c_in, c, 7, 1, 3),
            GatedConv2d(c, c, 3, 2, 1),
            GatedConv2d(c, 2 * c, 5, 1, 2),
            GatedConv2d(2 * c, 2 * c, 3, 2, 1),
            GatedConv2d(2 * c, 6, 3, 1, 1),
        )
        flat = 6 * _down(_down(height)) * _down(_down(width))
        self.dense = GatedDense(flat, out_features)
        self._rows = max(1, ACTIVATION_BUDGET // (2 * c * height * width))

    def _run(self, x):
        return self.dense(self.convs(x.reshape((-1,) + self.image_shape)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = in_chunks(self._run, self._rows, x.reshape(-1, x.shape[-1]))
        return h.reshape(lead + (self.out_features,))


class GatedConvDecoder(nn.Module):
    """h (..., in_features) -> a map (..., out_channels, H, W): a gated dense layer to (2c, ceil(H/4), ceil(W/4)), two
    gated 4x4 stride-2 transposed convolutions, a crop to H x W, a gated 3x3 convolution and a 1x1 convolution."""

    def __init__(self, in_features: int, image_shape: Tuple[int, int, int], out_channels: int, channels: int = 32):
        super().__init__()
        _, height, width = image_shape
        self.image_shape, self.in_features, self.out_channels = tuple(image_shape), in_features, out_channels
        c = channels
        self.start = (2 * c, _down(_down(height)), _down(_down(width)))
        self.dense = GatedDense(in_features, math.prod(self.start))
        self.up = nn.Sequential(GatedConvTranspose2d(2 * c, c, 4, 2, 1), GatedConvTranspose2d(c, c, 4, 2, 1))
        self.conv = GatedConv2d(c, c, 3, 1, 1)
        self.out = nn.Conv2d(c, out_channels, 1)
        self._rows = max(1, ACTIVATION_BUDGET // (c * 4 * height * width))

    def _run(self, h):
        _, height, width = self.image_shape
        t = self.up(self.dense(h).reshape((-1,) + self.start))[..., :height, :width]
        return self.out(self.conv(t))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        lead = h.shape[:-1]
        out = in_chunks(self._run, self._rows, h.reshape(-1, h.shape[-1]))
        return out.reshape(lead + out.shape[1:])


class GatedGaussian(nn.Module):
    """z -> (loc, scale) of a diagonal Gaussian through gated dense layers (the paper's p(z1|z2)): a linear mean and a
    log-variance squashed to [-6, 2] (hardtanh), scale = exp(log-variance / 2)."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers.append(GatedDense(width, h))
            width = h
        self.body = nn.Sequential(*layers)
        self.loc = nn.Linear(width, out_features)
        self.log_var = nn.Linear(width, out_features)

    def forward(self, z: torch.Tensor):
        h = self.body(z)
        return self.loc(h), torch.exp(0.5 * F.hardtanh(self.log_var(h), -6.0, 2.0))


def check_hidden(model_name: str, hidden) -> Tuple[int, ...]:
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"model {model_name} needs at least one positive --hidden width (its gated dense layers), "
                          f"got {','.join(map(str, hidden)) or '0'}")
    return hidden


@MODELS.register("convhvae", paper="Tomczak & Welling 2018 (convHVAE, L=2, gated convolutions)",
                 summary="convolutional two-layer VAE: z2 ~ p(z2), z1 ~ p(z1|z2), x ~ p(x|gated deconv(z1,z2)); "
                         "prior on z2; image data", hidden=(300,))
class ConvHVAE(ZooModel):
    """Two stochastic layers, gated convolutional encoder and decoder; see the module docstring."""

    model_name = "convhvae"

    def __init__(self, data_dim: int, latent_dim: int = 40, latent_dim1: Optional[int] = None,
                 hidden: Sequence[int] = (300,), likelihood: str = "bernoulli", prior: str = "standard",
                 sigma: float = 0.1, conv_channels: int = 32, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        self.image_shape = require_image_shape(self.model_name, data_dim, image_shape)
        latent_dim1 = latent_dim if latent_dim1 is None else latent_dim1
        if latent_dim < 1 or latent_dim1 < 1 or conv_channels < 1:
            raise ConfigError(f"{self.model_name}: latent sizes and channels must be positive, got z2 {latent_dim}, "
                              f"z1 {latent_dim1}, channels {conv_channels}")
        self.latent_dim, self.latent_dim1 = latent_dim, latent_dim1
        self.hidden, self.conv_channels = check_hidden(self.model_name, hidden), conv_channels
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.prior = build_prior(prior, latent_dim, data_dim=data_dim, site="z2")
        self.p_z1 = GatedGaussian(latent_dim, self.hidden, latent_dim1)
        width = self.hidden[0]
        self.p_x_z1 = GatedDense(latent_dim1, width)
        self.p_x_z2 = GatedDense(latent_dim, width)
        self.p_x_joint = GatedDense(2 * width, width)
        self.decoder = self._make_decoder(width)

    # ---------------------------------------------------------------- the parts a subclass swaps (PixelHVAE)
    def _make_decoder(self, in_features: int) -> nn.Module:
        c = self.image_shape[0]
        return GatedConvDecoder(in_features, self.image_shape, self.likelihood.params_per_dim * c, self.conv_channels)

    def observation(self, h: torch.Tensor, x: torch.Tensor):
        """p(x | h): the likelihood of the decoder's parameter map, flattened parameter-major."""
        return self.likelihood(self.decoder(h).flatten(-3))

    # ---------------------------------------------------------------- the model
    def features(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The decoder's input computed from both latent layers (..., hidden[0])."""
        return self.p_x_joint(torch.cat([self.p_x_z1(z1), self.p_x_z2(z2)], dim=-1))

    def latent_sites(self):
        return [LatentSite("z2", self.latent_dim), LatentSite("z1", self.latent_dim1, depends_on=("z2",))]

    def make_encoder(self):
        return GatedConvEncoder(self.image_shape, self.hidden[-1], self.conv_channels)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            z2 = pyro.sample("z2", self.prior(x.shape[0], x))
            loc, scale = self.p_z1(z2)
            z1 = pyro.sample("z1", dist.Normal(loc, scale, validate_args=False).to_event(1))
            return pyro.sample("x", self.observation(self.features(z1, z2), x), obs=x)

    @torch.no_grad()
    def sample_features(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """h = features(z1, z2) for n draws z2 ~ p(z2), z1 ~ p(z1 | z2) (plain torch, no Pyro handlers)."""
        z2 = self.prior(n, like).sample()
        loc, scale = self.p_z1(z2)
        return self.features(loc + scale * torch.randn_like(loc), z2)

    def extra_repr(self):
        return f"image_shape={self.image_shape}, z2={self.latent_dim}, z1={self.latent_dim1}"
