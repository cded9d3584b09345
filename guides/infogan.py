"""InfoGAN's auxiliary distribution Q(c | x) as a Pyro guide (Chen et al. 2016, Section 5).

    Q(c | x)  = Cat(c; softmax(l(x)))                       the categorical code, site "c"
    Q(c'| x)  = N(c'; mu(x), diag sigma(x)^2)               the continuous codes, site "c_cont" (factored Gaussian)

from one network: for images with sides divisible by 4, the paper's MNIST Q (appendix, Table 1): 4x4 convolution
(stride 2) to 64 channels, LeakyReLU(0.1); 4x4 convolution to 128 channels, BN, LeakyReLU(0.1); FC ``hidden`` (128), BN,
LeakyReLU(0.1); FC to the K logits and the continuous codes' means and scales. On vectors, an MLP with the same head.

In the paper Q shares every layer but the last with the discriminator D. Here it is a network of its own: the zoo's
critic is stepped by the critic's optimizer on the critic's loss, the guide by the generator's optimizer on the
generator's loss (:mod:`inference.adversarial_training`), so a shared body would be trained by two optimizers on two
losses; and a run's guide must be complete without its critic, since evaluation and the report load model and guide
only (``load_run``). The cost is a second convolutional body on the generated batch in the generator's step.

sigma is learned (a softplus of the head's output) by default, as most reimplementations do; ``--guide-option
sigma=S`` fixes it to S (the authors' released code fixes it to 1). The guide samples the model's code sites by name,
so the objective ``infogan`` (:mod:`inference.infogan`) scores the model's own codes under it with
``poutine.condition``.
"""
import math
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from guides.base import GUIDES
from zoo.errors import ConfigError
from zoo.model import data_plate


def _name(model) -> str:
    return getattr(model, "display_name", lambda: type(model).__name__)()


@GUIDES.register("infogan", paper="Chen et al. 2016 (InfoGAN's auxiliary Q)",
                 summary="auxiliary Q(c|x) of InfoGAN: categorical logits and a factored Gaussian over the continuous "
                         "codes (the default of `infogan`)", supports=("categorical", "real"), only_for="infogan")
class InfoGANGuide(nn.Module):
    """Q(c|x) Q(c'|x); see the module docstring."""

    def __init__(self, model, hidden: int = 128, width: int = 64, sigma: Optional[float] = None):
        super().__init__()
        if not isinstance(getattr(model, "categorical", None), int) or not hasattr(model, "categorical_site"):
            raise ConfigError(f"guide infogan is the auxiliary Q(c|x) of an InfoGAN generator, and model "
                              f"{_name(model)} has no categorical code; use --model infogan")
        if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                                  or not math.isfinite(sigma) or sigma <= 0):
            raise ConfigError(f"guide infogan: sigma={sigma!r} must be a positive number (or left out to learn it)")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ConfigError(f"guide infogan: hidden={hidden!r} must be a positive whole number")
        self.data_dim, self.image_shape = model.data_dim, model.image_shape
        self.categorical, self.continuous = model.categorical, int(getattr(model, "continuous", 0))
        self.categorical_site = model.categorical_site
        self.continuous_site = getattr(model, "continuous_site", "c_cont")
        self.sigma = None if sigma is None else float(sigma)
        shape = self.image_shape
        if shape is not None and shape[1] % 4 == 0 and shape[2] % 4 == 0:
            c, h, w = shape
            self.body = nn.Sequential(
                nn.Conv2d(c, width, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
                nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.1),
                nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), hidden), nn.BatchNorm1d(hidden),
                nn.LeakyReLU(0.1))
            self._fold = tuple(shape)
        else:
            self.body = nn.Sequential(nn.Linear(self.data_dim, 4 * hidden), nn.LeakyReLU(0.1),
                                      nn.Linear(4 * hidden, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.1))
            self._fold = None
        per_code = 1 if self.sigma is not None else 2
        self.head = nn.Linear(hidden, self.categorical + per_code * self.continuous)

    def parameters_of(self, x: torch.Tensor):
        """(logits (..., K), loc (..., D_c), scale (..., D_c)) of Q(c|x) Q(c'|x) for x (..., D)."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.data_dim)
        h = self.body(flat.reshape(-1, *self._fold) if self._fold is not None else flat)
        out = self.head(h).reshape(*lead, -1)
        K, D = self.categorical, self.continuous
        logits, loc = out[..., :K], out[..., K:K + D]
        if self.sigma is not None:
            scale = torch.full_like(loc, self.sigma)
        else:
            scale = F.softplus(out[..., K + D:]) + 1e-3
        return logits, loc, scale

    def code_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of Q(c | x), shape (..., K): argmax is the code a data point is assigned to."""
        return self.parameters_of(x)[0]

    def forward(self, x: torch.Tensor, y=None):
        logits, loc, scale = self.parameters_of(x)
        values = {}
        with data_plate(x):
            values[self.categorical_site] = pyro.sample(self.categorical_site, dist.Categorical(logits=logits))
            if self.continuous:
                values[self.continuous_site] = pyro.sample(
                    self.continuous_site, dist.Normal(loc, scale, validate_args=False).to_event(1))
        return values
