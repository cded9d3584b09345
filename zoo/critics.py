"""Critics (discriminators) of adversarial training: a swappable component with its own registry (``--critic``).

A critic is an ``nn.Module`` V_omega: (..., D) -> (...) giving one raw real number per data point. What that number
means is the objective's business (:mod:`inference.adversarial`): the logit of D(x) = sigmoid(V(x)) for the GAN
objectives of Goodfellow et al. 2014, the argument of the output activation T(x) = g_f(V(x)) of f-GAN (Nowozin et al.
2016), the Wasserstein potential itself for WGAN-GP (Gulrajani et al. 2017). Critics are sized from the data like
encoders are: ``build_critic(spec, data_dim, image_shape)``.

* ``mlp`` -- LeakyReLU(0.2) MLP, hidden widths 512, 256 by default (``mlp`` takes ``hidden=...`` as an option);
* ``dcgan`` -- the DCGAN discriminator for images with sides divisible by 4 (Radford et al. 2016): Conv(4, stride 2)
  -> 64 channels, LeakyReLU(0.2); Conv(4, stride 2) -> 128 channels, LeakyReLU(0.2); Linear -> 1. No batch norm: the
  gradient penalty of WGAN-GP is defined per sample, which batch statistics would break (Gulrajani et al. 2017, 4),
  and the critic then trains data-parallel exactly.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.registry import Registry

CRITICS = Registry("critic")


class Critic(nn.Module):
    """V(x): (..., D) -> (...), flattening any leading batch dimensions."""

    def __init__(self, data_dim: int):
        super().__init__()
        self.data_dim = data_dim

    def score(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return self.score(x.reshape(-1, self.data_dim)).reshape(lead)


@CRITICS.register("mlp", paper="Goodfellow et al. 2014", summary="LeakyReLU MLP critic (512, 256) on flat data")
class MLPCritic(Critic):
    def __init__(self, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None,
                 hidden: Sequence[int] = (512, 256)):
        super().__init__(data_dim)
        layers, width = [], data_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def score(self, x):
        return self.net(x).squeeze(-1)


@CRITICS.register("dcgan", paper="Radford, Metz & Chintala 2016 (DCGAN)",
                  summary="convolutional critic for images (two stride-2 convolutions, LeakyReLU, no batch norm)")
class DCGANCritic(Critic):
    def __init__(self, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None, width: int = 64):
        super().__init__(data_dim)
        if image_shape is None:
            raise ConfigError("critic dcgan is for images; these data are vectors: use --critic mlp")
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ConfigError(f"critic dcgan needs image sides that are multiples of 4, got {h}x{w}; use --critic mlp")
        self.image_shape = tuple(image_shape)
        self.net = nn.Sequential(
            nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 1))

    def score(self, x):
        return self.net(x.reshape(-1, *self.image_shape)).squeeze(-1)


def default_critic(image_shape) -> str:
    """``dcgan`` for images whose sides are multiples of 4, ``mlp`` otherwise."""
    if image_shape is not None and image_shape[1] % 4 == 0 and image_shape[2] % 4 == 0:
        return "dcgan"
    return "mlp"


def build_critic(spec: str, data_dim: int, image_shape=None, **options) -> nn.Module:
    """The critic ``spec`` names (registered, entry point ``pyro_zoo.critics``, or ``module:attr``), sized from the
    data: its factory is called with (data_dim, image_shape=..., **options)."""
    entry, arg = CRITICS.lookup(spec)
    try:
        if arg is not None:
            return CRITICS.build(spec, data_dim, image_shape=image_shape, **options)
        critic = entry.factory(data_dim, image_shape=image_shape, **options)
    except TypeError as e:
        raise ConfigError(f"critic {entry.name!r} cannot be built for data of dimension {data_dim}: {e}")
    if not isinstance(critic, nn.Module):
        raise ConfigError(f"critic {entry.name!r} is a {type(critic).__name__}, not an nn.Module V(x) -> one number "
                          f"per point")
    return critic
