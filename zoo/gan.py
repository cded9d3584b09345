"""Implicit generators: the generator of a GAN as a Pyro model.

Goodfellow et al. 2014, "Generative Adversarial Nets"; DCGAN: Radford, Metz & Chintala 2016, "Unsupervised
Representation Learning with Deep Convolutional Generative Adversarial Networks".

    z ~ p(z) = N(0, I_d)            (the generator's noise, inside the data plate)
    x = G_theta(z)                  (the site "x": a point mass Delta(G(z)), no density)

The model is an ordinary zoo model -- the observed site is still ``"x"``, so ``model.sample()``, sample grids and
reports work unchanged -- but it is *implicit* (:attr:`zoo.model.ZooModel.implicit`): p_theta(x) has no density, so
it is trained only by an adversarial objective (``gan``, ``gan-ns``, ``fgan:NAME``, ``wgan-gp``,
:mod:`inference.adversarial`), which sees it only through samples x = G(z), and the likelihood objectives and the
importance-sampled NLL refuse it in one line. The noise z is part of the generator, not a latent to infer: its guide
is ``none``.

* ``gan`` -- an MLP generator (hidden ReLU layers, batch norm off by default so it trains data-parallel exactly);
* ``dcgan`` -- the DCGAN generator for images whose height and width are multiples of 4 (28x28 MNIST: the
  layout of the DCGAN/InfoGAN MNIST generators): Linear -> 128 x H/4 x W/4, BN, ReLU; ConvTranspose(4, stride 2) ->
  64 channels, BN, ReLU; ConvTranspose(4, stride 2) -> C channels.

The output activation maps to the data's range: ``sigmoid`` for pixel intensities in [0, 1] (the default; the zoo's
image data sets are scaled to [0, 1]), ``tanh`` for data in [-1, 1], ``none`` for unbounded data.
"""
from typing import Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from zoo.errors import ConfigError, DataError
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.mlp import MLP

OUTPUTS = {"sigmoid": (nn.Sigmoid, (0.0, 1.0)), "tanh": (nn.Tanh, (-1.0, 1.0)), "none": (nn.Identity, None)}

#: what `zoo train` uses for an implicit generator unless told otherwise: no guide, grey levels, an adversarial loss
GAN_DEFAULTS = dict(guide="none", binarize="none", objective="gan-ns", hidden=None, latent_dim=64)


def output_layer(name: str) -> Tuple[nn.Module, Optional[Tuple[float, float]]]:
    if name not in OUTPUTS:
        raise ConfigError(f"unknown generator output {name!r}; choose one of: {', '.join(OUTPUTS)}")
    layer, bounds = OUTPUTS[name]
    return layer(), bounds


class ImplicitGenerator(ZooModel):
    """Base of the implicit generators: z ~ N(0, I) in the data plate, x = G(z) observed as a point mass."""

    implicit = True

    def __init__(self, data_dim: int, latent_dim: int, output: str,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        if latent_dim < 1:
            raise ConfigError(f"--latent-dim must be positive, got {latent_dim}")
        self.latent_dim, self.output = latent_dim, output
        self.out_act, self.bounds = output_layer(output)

    def latent_sites(self):
        return []  # z is the generator's input noise, drawn from p(z) in training and sampling alike: nothing to infer

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (..., latent_dim) -> (..., data_dim)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            zero = x.new_zeros(())
            z = pyro.sample("z", dist.Normal(zero, 1.0).expand([self.latent_dim]).to_event(1))
            return pyro.sample("x", dist.Delta(self.generate(z), event_dim=1), obs=x)

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects (N, {self.data_dim})")
        if self.bounds is not None and x.numel():
            lo, hi = self.bounds
            if bool((x < lo).any()) or bool((x > hi).any()):
                raise DataError(f"{where} has values in [{float(x.min()):.3g}, {float(x.max()):.3g}], outside the "
                                f"generator's output range [{lo:g}, {hi:g}] (--model-option output={self.output}); "
                                f"rescale the data, or choose output=" + ("tanh" if lo == 0 else "none"))

    def observed_is_discrete(self) -> bool:
        return False


@MODELS.register("gan", paper="Goodfellow et al. 2014", summary="implicit MLP generator: z ~ N(0, I), x = G(z) "
                 "(no density; adversarial objectives only)", **GAN_DEFAULTS)
class GAN(ImplicitGenerator):
    """MLP generator G(z) = out(MLP(z)) of Goodfellow et al. 2014; see the module docstring."""

    def __init__(self, data_dim: int, latent_dim: int = 64, hidden: Optional[Sequence[int]] = (256, 512),
                 activation: str = "relu", output: str = "sigmoid", batch_norm: bool = False,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, latent_dim, output, image_shape)
        hidden = tuple(hidden) if hidden is not None else (256, 512)
        self.hidden = hidden
        if batch_norm:
            layers, width = [], latent_dim
            for h in hidden:
                layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
                width = h
            self.body = nn.Sequential(*layers, nn.Linear(width, data_dim))
        else:
            self.body = MLP(latent_dim, hidden, data_dim, act=activation)

    def generate(self, z):
        lead = z.shape[:-1]
        return self.out_act(self.body(z.reshape(-1, self.latent_dim))).reshape(*lead, self.data_dim)


@MODELS.register("dcgan", paper="Radford, Metz & Chintala 2016 (DCGAN)", summary="implicit DCGAN generator for "
                 "images (transposed convolutions, batch norm, ReLU, sigmoid out)", **GAN_DEFAULTS)
class DCGAN(ImplicitGenerator):
    """DCGAN generator of Radford et al. 2016 at the MNIST scale; see the module docstring."""

    def __init__(self, data_dim: int, latent_dim: int = 64, output: str = "sigmoid", width: int = 64,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, latent_dim, output, image_shape)
        if image_shape is None:
            raise ConfigError("model dcgan is for images; these data are vectors: use --model gan")
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ConfigError(f"model dcgan needs image sides that are multiples of 4 (two stride-2 upsamplings), got "
                              f"{h}x{w}; use --model gan")
        self.start = (2 * width, h // 4, w // 4)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * (h // 4) * (w // 4)),
                                     nn.BatchNorm1d(2 * width * (h // 4) * (w // 4)), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1))

    def generate(self, z):
        lead = z.shape[:-1]
        h = self.project(z.reshape(-1, self.latent_dim)).reshape(-1, *self.start)
        return self.out_act(self.upsample(h)).reshape(*lead, self.data_dim)
