"""InfoGAN's generator as a Pyro model: noise, a categorical code and continuous codes, all inside the data plate.

Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel 2016, "InfoGAN: Interpretable Representation Learning by Information
Maximizing Generative Adversarial Nets".

    z ~ N(0, I_{d_z})                         (incompressible noise; d_z = 62 in the paper's MNIST set-up)
    c ~ Cat(1/K, ..., 1/K)                    (the categorical code, site "c"; K = 10)
    c' ~ U(-1, 1)^{d_c}                       (the continuous codes, site "c_cont"; d_c = 2)
    x = G(z, onehot(c), c')                   (site "x": a point mass, no density -- an implicit generator)

``--latent-dim`` is the width of G's whole input, d_z + K + d_c (74 = 62 + 10 + 2 by default, the paper's MNIST
input), so the codes must leave room for at least one noise unit: codes that do not fit are refused in one line, as
are a categorical code of fewer than 2 classes and a negative number of continuous codes (``--model-option
categorical=K``, ``--model-option continuous=D``; ``continuous=0`` drops the site ``c_cont``).

The generator is the paper's MNIST one (Chen et al. 2016, Table 1 of the appendix) for images whose sides are
multiples of 4: FC 1024, BN, ReLU; FC 128 x H/4 x W/4, BN, ReLU; 4x4 up-convolution (stride 2) to 64 channels, BN,
ReLU; 4x4 up-convolution to C channels, sigmoid. Other data get an MLP generator with the same hidden widths
(``hidden``) and batch norm.

The codes are sampled from p(c) like the noise -- the model has no latent to infer in the ELBO's sense
(``latent_sites()`` is empty) -- and the auxiliary distribution Q(c | x) of the paper is the model's guide (``infogan``,
:mod:`guides.infogan`), used only by the objective ``infogan`` (:mod:`inference.infogan`), which adds lambda times the
variational lower bound of the mutual information I(c; G(z, c)) to the non-saturating GAN loss.
"""
from typing import Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError
from zoo.gan import ImplicitGenerator
from zoo.model import MODELS, data_plate

#: what `zoo train --model infogan` uses unless told otherwise: Q(c|x) as the guide, the InfoGAN objective, grey levels
INFOGAN_DEFAULTS = dict(guide="infogan", binarize="none", objective="infogan", hidden=None, latent_dim=74)


def _whole(name: str, value, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"model infogan: {name}={value!r} must be a whole number >= {least}"
                          + (" (the number of classes of the categorical code; the paper uses 10 for MNIST)"
                             if name == "categorical" else " (the number of continuous codes; the paper uses 2)"))
    return value


@MODELS.register("infogan", paper="Chen et al. 2016 (InfoGAN)",
                 summary="implicit generator x = G(z, c, c') with noise z, a categorical code c (K = 10) and "
                         "continuous codes c' ~ U(-1, 1) (2); Q(c|x) is its guide `infogan`", **INFOGAN_DEFAULTS)
class InfoGAN(ImplicitGenerator):
    """The InfoGAN generator; see the module docstring."""

    #: the code sites, read by the guide (Q(c|x)) and the report's figures; the objective finds them by tracing
    categorical_site, continuous_site = "c", "c_cont"

    def __init__(self, data_dim: int, latent_dim: int = 74, categorical: int = 10, continuous: int = 2,
                 hidden: Optional[Sequence[int]] = (1024,), width: int = 64, output: str = "sigmoid",
                 image_shape: Optional[Tuple[int, int, int]] = None):
        categorical = _whole("categorical", categorical, 2)
        continuous = _whole("continuous", continuous, 0)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim - categorical - continuous < 1:
            codes = categorical + continuous
            raise ConfigError(f"model infogan: the codes (categorical {categorical} + continuous {continuous} = "
                              f"{codes} inputs of G) do not fit --latent-dim {latent_dim}, G's whole input (noise z, "
                              f"onehot(c), c'): give --latent-dim {codes + 1} or more (the paper's 74 = 62 noise + 10 "
                              f"+ 2), or smaller codes")
        super().__init__(data_dim, latent_dim, output, image_shape)
        self.categorical, self.continuous = categorical, continuous
        self.noise_dim = latent_dim - categorical - continuous
        hidden = tuple(hidden) if hidden is not None else (1024,)
        self.hidden, self.width = hidden, width
        layers, w = [], latent_dim
        for h in hidden:
            layers += [nn.Linear(w, h), nn.BatchNorm1d(h), nn.ReLU()]
            w = h
        conv = image_shape is not None and image_shape[1] % 4 == 0 and image_shape[2] % 4 == 0
        self.layout = "conv" if conv else "mlp"
        if conv:
            c, h, wd = image_shape
            self.start = (2 * width, h // 4, wd // 4)
            n = 2 * width * (h // 4) * (wd // 4)
            self.project = nn.Sequential(*layers, nn.Linear(w, n), nn.BatchNorm1d(n), nn.ReLU())
            self.upsample = nn.Sequential(
                nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.ConvTranspose2d(width, c, 4, stride=2, padding=1))
        else:
            self.project = nn.Sequential(*layers, nn.Linear(w, data_dim))
            self.upsample = None

    def display_name(self) -> str:
        return "InfoGAN"

    def generator_input(self, z: torch.Tensor, c: torch.Tensor, c_cont: Optional[torch.Tensor] = None):
        """(z, c as class indices, c') -> G's input (..., latent_dim): z, onehot(c), c' concatenated."""
        parts = [z, F.one_hot(c.long(), self.categorical).to(z.dtype)]
        if self.continuous:
            parts.append(c_cont)
        return torch.cat(parts, dim=-1)

    def generate(self, z: torch.Tensor, c: torch.Tensor, c_cont: Optional[torch.Tensor] = None) -> torch.Tensor:
        """G(z, c, c'): (..., noise_dim), (...) class indices, (..., continuous) -> (..., data_dim)."""
        inputs = self.generator_input(z, c, c_cont)
        lead = inputs.shape[:-1]
        h = self.project(inputs.reshape(-1, self.latent_dim))
        if self.upsample is not None:
            h = self.upsample(h.reshape(-1, *self.start))
        return self.out_act(h).reshape(*lead, self.data_dim)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            zero = x.new_zeros(())
            z = pyro.sample("z", dist.Normal(zero, 1.0).expand([self.noise_dim]).to_event(1))
            c = pyro.sample(self.categorical_site, dist.Categorical(logits=x.new_zeros(self.categorical)))
            c_cont = None
            if self.continuous:
                c_cont = pyro.sample(self.continuous_site,
                                     dist.Uniform(zero - 1.0, zero + 1.0).expand([self.continuous]).to_event(1))
            return pyro.sample("x", dist.Delta(self.generate(z, c, c_cont), event_dim=1), obs=x)
