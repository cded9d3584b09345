r"""VAEs with an autoregressive PixelCNN decoder: ``pixelvae`` (one latent layer, Gulrajani et al. 2017, "PixelVAE: A
Latent Variable Model for Natural Images") and ``pixelhvae`` (two latent layers, the PixelHVAE of Tomczak & Welling
2018, "VAE with a VampPrior").

    pixelvae:   z ~ p(z),                                  x ~ prod_i p(x_i | x_<i, s(z))
    pixelhvae:  z2 ~ p(z2),  z1 | z2 ~ N(mu(z2), sigma(z2)^2),  x ~ prod_i p(x_i | x_<i, s(z1, z2))

(``--prior`` on z, resp. the top layer z2). The decoder turns the latents into a conditioning feature map
s (``cond_channels`` x H x W) with the gated up-convolution decoder of :mod:`zoo.convhvae`, and a PixelCNN
(:class:`zoo.networks.masked_conv.PixelCNN`: a 7x7 mask-A layer, then 3x3 mask-B layers with residual connections,
``pixel_layers`` layers of ``pixel_hidden`` channels; every layer adds a 1x1 projection of s) emits the parameters of
each pixel's conditional. Defaults are CPU-sized (4 layers of 32 channels, ``cond_channels`` 16); the VampPrior
paper's PixelHVAE uses 8 masked layers of 64 channels (``pixel_layers=8, pixel_hidden=64``, Python options).
The likelihood (``--likelihood``: Bernoulli for binary images, discretized logistic for 8-bit grey levels, Gaussian,
...) is applied per pixel to those parameters.

* **Training and evaluation -- exact, one pass.** The observed x is the PixelCNN's input: the masked convolutions make
  the parameters at pixel i a function of x_<i (raster order) and of s only, so the likelihood's log-density of the
  whole image, taken in one network pass, *is* log p(x | z) = sum_i log p(x_i | x_<i, z) (teacher forcing). Tests
  check it against the one-pixel-at-a-time computation and check the causality by gradients through the full model.
  With K importance samples the network runs on the K x B (latent, image) pairs, in chunks of bounded memory.
* **Sampling -- sequential.** :meth:`sample` draws z from the prior, then x pixel by pixel in raster order (H x W
  network passes, :meth:`PixelCNN.sample`), each pixel from its conditional given the pixels already drawn.
  :meth:`ZooModel.sample`'s generic way -- trace the model on a placeholder x and read E[x | z] off the observed site --
  would be wrong here: the conditionals would be those given the placeholder's pixels. With ``mean=True`` the
  returned picture holds E[x_i | x_<i, z] for the drawn x (one more pass), a smoother rendering of the same draw.

Encoder: the gated convolutional h(x) of :mod:`zoo.convhvae` (:meth:`make_encoder`, so every guide uses it).
Image data only: a one-line :class:`~zoo.errors.ConfigError` otherwise.
"""
from typing import Optional, Sequence, Tuple

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from zoo.convhvae import (ACTIVATION_BUDGET, ConvHVAE, GatedConvDecoder, GatedConvEncoder, check_hidden, in_chunks,
                          require_image_shape)
from zoo.errors import ConfigError
from zoo.latents import LatentSite
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.gated import GatedDense
from zoo.networks.masked_conv import PixelCNN
from zoo.priors import build_prior


def _check_pixel_options(model_name, pixel_hidden, pixel_layers, cond_channels, first_kernel):
    if min(pixel_hidden, pixel_layers, cond_channels) < 1 or first_kernel < 1 or first_kernel % 2 == 0:
        raise ConfigError(f"model {model_name}: pixel_hidden, pixel_layers, cond_channels must be positive and "
                          f"first_kernel odd, got {pixel_hidden}, {pixel_layers}, {cond_channels}, {first_kernel}")


class PixelCNNDecoder(nn.Module):
    """h (..., in_features) and x (B, D) -> the parameters (..., P*D) of every p(x_i | x_<i, h), in one pass.

    s = GatedConvDecoder(h) is the PixelCNN's conditioning map; the output is flattened parameter-major (P blocks of
    D values), the layout of :mod:`zoo.likelihoods`."""

    def __init__(self, in_features: int, image_shape: Tuple[int, int, int], params_per_dim: int,
                 conv_channels: int = 32, cond_channels: int = 16, pixel_hidden: int = 32, pixel_layers: int = 4,
                 first_kernel: int = 7):
        super().__init__()
        c, height, width = image_shape
        self.image_shape, self.params_per_dim = tuple(image_shape), params_per_dim
        self.conditioning = GatedConvDecoder(in_features, image_shape, cond_channels, conv_channels)
        kernels = [first_kernel] + [3] * (pixel_layers - 1)
        self.pixelcnn = PixelCNN(c, pixel_hidden, pixel_layers, kernels, params_per_dim * c, cond_channels)
        self._rows = max(1, ACTIVATION_BUDGET // (pixel_hidden * height * width))

    def _run(self, h, x):
        return self.pixelcnn(x.reshape((-1,) + self.image_shape), self.conditioning(h)).flatten(1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        lead = h.shape[:-1]
        xs = x.expand(lead + x.shape[-1:])  # (B, D) against the latents' (K, B): one image per (particle, point)
        out = in_chunks(self._run, self._rows, h.reshape(-1, h.shape[-1]), xs.reshape(-1, x.shape[-1]))
        return out.reshape(lead + out.shape[-1:])

    @torch.no_grad()
    def sample(self, h: torch.Tensor, likelihood, mean: bool = True) -> torch.Tensor:
        """x ~ prod_i p(x_i | x_<i, h) pixel by pixel (H W passes), flattened (n, D); ``mean``: E[x_i | x_<i, h] of
        the drawn x instead of x itself."""
        n = h.shape[0]
        cond = self.conditioning(h)
        shape = (n,) + self.image_shape
        x = self.pixelcnn.sample(cond, shape, dist_fn=lambda out: _RowsSoFar(out, likelihood, self.image_shape))
        if mean:
            return likelihood.mean(self.pixelcnn(x, cond).flatten(1))
        return x.flatten(1)


class _RowsSoFar:
    """The likelihood's per-pixel distribution for the network output on the first rows of the image (what
    :meth:`PixelCNN.sample` passes): the rows below are padded so the likelihood sees a whole image, and the draw is
    cut back to the rows given."""

    def __init__(self, out, likelihood, image_shape):
        self.out, self.likelihood, self.image_shape = out, likelihood, image_shape

    def sample(self):
        n, _, rows, _ = self.out.shape
        c, height, width = self.image_shape
        full = F.pad(self.out, (0, 0, 0, height - rows))
        draw = self.likelihood(full.flatten(1)).sample()
        return draw.reshape(n, c, height, width)[:, :, :rows]


class _PixelCNNObservation:
    """What the two PixelCNN models share: p(x | h) from the PixelCNN decoder (the observed x is its input) and the
    sequential :meth:`sample`."""

    def _make_decoder(self, in_features: int) -> nn.Module:
        o = self.pixel_options
        return PixelCNNDecoder(in_features, self.image_shape, self.likelihood.params_per_dim, self.conv_channels,
                               o["cond_channels"], o["pixel_hidden"], o["pixel_layers"], o["first_kernel"])

    def observation(self, h: torch.Tensor, x: torch.Tensor):
        """p(x | h) = prod_i p(x_i | x_<i, h): the likelihood of the PixelCNN's one-pass output on the observed x."""
        return self.likelihood(self.decoder(h, x))

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        """n draws: latents from the prior, then x pixel by pixel (see the module docstring); ``like`` fixes
        device/dtype. Overrides :meth:`ZooModel.sample`, which is wrong for an autoregressive decoder."""
        return self.decoder.sample(self.sample_features(n, like), self.likelihood, mean)


@MODELS.register("pixelvae", paper="Gulrajani et al. 2017 (PixelVAE); van den Oord et al. 2016 (PixelCNN)",
                 summary="VAE with a PixelCNN decoder: z ~ p(z), x ~ prod_i p(x_i | x_<i, z); exact one-pass "
                         "log p(x|z), sequential sampling; image data", hidden=(300,))
class PixelVAE(_PixelCNNObservation, ZooModel):
    """One latent layer, gated convolutional encoder, PixelCNN decoder; see the module docstring."""

    model_name = "pixelvae"

    def __init__(self, data_dim: int, latent_dim: int = 40, hidden: Sequence[int] = (300,),
                 likelihood: str = "bernoulli", prior: str = "standard", sigma: float = 0.1, conv_channels: int = 32,
                 cond_channels: int = 16, pixel_hidden: int = 32, pixel_layers: int = 4, first_kernel: int = 7,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        self.image_shape = require_image_shape(self.model_name, data_dim, image_shape)
        if latent_dim < 1 or conv_channels < 1:
            raise ConfigError(f"{self.model_name}: latent size and channels must be positive, got {latent_dim}, "
                              f"{conv_channels}")
        _check_pixel_options(self.model_name, pixel_hidden, pixel_layers, cond_channels, first_kernel)
        self.latent_dim, self.hidden, self.conv_channels = latent_dim, check_hidden(self.model_name, hidden), \
            conv_channels
        self.pixel_options = dict(cond_channels=cond_channels, pixel_hidden=pixel_hidden, pixel_layers=pixel_layers,
                                  first_kernel=first_kernel)
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.prior = build_prior(prior, latent_dim, data_dim=data_dim)
        self.p_x_z = GatedDense(latent_dim, self.hidden[0])
        self.decoder = self._make_decoder(self.hidden[0])

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.p_x_z(z)

    def latent_sites(self):
        return [LatentSite("z", self.latent_dim)]

    def make_encoder(self):
        return GatedConvEncoder(self.image_shape, self.hidden[-1], self.conv_channels)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            z = pyro.sample("z", self.prior(x.shape[0], x))
            return pyro.sample("x", self.observation(self.features(z), x), obs=x)

    @torch.no_grad()
    def sample_features(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return self.features(self.prior(n, like).sample())

    def extra_repr(self):
        return f"image_shape={self.image_shape}, z={self.latent_dim}"


@MODELS.register("pixelhvae", paper="Tomczak & Welling 2018 (PixelHVAE, L=2); van den Oord et al. 2016 (PixelCNN)",
                 summary="two-layer VAE with a PixelCNN decoder: z2 ~ p(z2), z1 ~ p(z1|z2), x ~ prod_i "
                         "p(x_i | x_<i, z1, z2); prior on z2; image data", hidden=(300,))
class PixelHVAE(_PixelCNNObservation, ConvHVAE):
    """convhvae's latents, encoder and p(z1|z2), with the PixelCNN decoder; see the module docstring."""

    model_name = "pixelhvae"

    def __init__(self, data_dim: int, latent_dim: int = 40, latent_dim1: Optional[int] = None,
                 hidden: Sequence[int] = (300,), likelihood: str = "bernoulli", prior: str = "standard",
                 sigma: float = 0.1, conv_channels: int = 32, cond_channels: int = 16, pixel_hidden: int = 32,
                 pixel_layers: int = 4, first_kernel: int = 7, image_shape: Optional[Tuple[int, int, int]] = None):
        _check_pixel_options(self.model_name, pixel_hidden, pixel_layers, cond_channels, first_kernel)
        # read by _make_decoder inside ConvHVAE.__init__ (a plain dict: set before the module is initialised)
        self.pixel_options = dict(cond_channels=cond_channels, pixel_hidden=pixel_hidden, pixel_layers=pixel_layers,
                                  first_kernel=first_kernel)
        super().__init__(data_dim, latent_dim=latent_dim, latent_dim1=latent_dim1, hidden=hidden,
                         likelihood=likelihood, prior=prior, sigma=sigma, conv_channels=conv_channels,
                         image_shape=image_shape)
