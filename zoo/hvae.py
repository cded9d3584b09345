"""The two-layer hierarchical VAE of Tomczak & Welling 2018 ("VAE with a VampPrior", the HVAE L=2 columns).

    z2 ~ p(z2)                              (``--prior``, the VampPrior included, on the top layer)
    z1 | z2 ~ N(mu(z2), diag sigma(z2)^2)
    x | z1, z2 ~ p(x | f(z1, z2))           (Bernoulli for binary data, Gaussian for continuous data)

with the guide q(z2 | x) q(z1 | x, z2): the model declares z2 first and z1 with ``depends_on=("z2",)``, so any
amortized guide (``diagonal``, the flows) samples z2 from h(x), then z1 from [h(x), z2].

Networks: plain MLPs (``--hidden 300,300``) where the paper uses gated dense layers; p(x | z1, z2) reads the
concatenation [z1, z2] through one MLP (the paper first maps z1 and z2 separately to 300 units each), and the guide's
q(z1 | x, z2) is a linear head on [h(x), z2] (the paper's has its own hidden layers). ``--hidden 0`` gives the linear
model p(z1 | z2) = N(A z2 + c, diag s^2) with a learned, z2-independent s and p(x | z1, z2) = N(W1 z1 + W2 z2 + b,
sigma^2 I): its marginal is Gaussian, x ~ N(W1 c + b, M M^T + W1 diag(s^2) W1^T + sigma^2 I) with M = W1 A + W2,
which tests the estimators on a hierarchy.

Sizes: ``latent_dim`` is the top layer z2 (the one the prior is on, ``--latent-dim``), ``latent_dim1`` the lower layer
z1 (``--latent-dim1``, default ``latent_dim``); the paper uses 40 and 40.
"""
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
from zoo.networks.mlp import MLP
from zoo.priors import build_prior


class ConditionalGaussian(nn.Module):
    """z -> (loc, scale) of a diagonal Gaussian: an MLP emitting both, or, without hidden layers, an affine loc with a
    learned scale that does not depend on z (so the linear model stays linear-Gaussian)."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, act: str = "relu"):
        super().__init__()
        self.linear = len(hidden) == 0
        self.net = MLP(in_features, hidden, out_features * (1 if self.linear else 2), act=act)
        if self.linear:
            self.raw_scale = nn.Parameter(torch.zeros(out_features))

    def forward(self, z: torch.Tensor):
        out = self.net(z)
        if self.linear:
            loc, raw = out, self.raw_scale.expand_as(out)
        else:
            loc, raw = out.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-5


@MODELS.register("hvae", paper="Tomczak & Welling 2018 (HVAE, L=2); Burda et al. 2016 (two stochastic layers)",
                 summary="two-layer VAE: z2 ~ p(z2), z1 ~ p(z1|z2), x ~ p(x|z1,z2); prior on z2")
class HVAE(ZooModel):
    """Two stochastic layers, MLP networks; see the module docstring for the generative process."""

    def __init__(self, data_dim: int, latent_dim: int = 20, latent_dim1: Optional[int] = None,
                 hidden: Sequence[int] = (400,), likelihood: str = "bernoulli", activation: str = "relu",
                 prior: str = "standard", sigma: float = 0.1, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        latent_dim1 = latent_dim if latent_dim1 is None else latent_dim1
        if latent_dim < 1 or latent_dim1 < 1:
            raise ConfigError(f"hvae: latent sizes must be positive, got z2 {latent_dim}, z1 {latent_dim1}")
        self.latent_dim, self.latent_dim1 = latent_dim, latent_dim1
        self.hidden, self.activation = tuple(hidden), activation
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.prior = build_prior(prior, latent_dim, data_dim=data_dim, site="z2")
        decoder_hidden = tuple(reversed(self.hidden))
        self.p_z1 = ConditionalGaussian(latent_dim, decoder_hidden, latent_dim1, act=activation)
        self.decoder = MLP(latent_dim1 + latent_dim, decoder_hidden, data_dim * self.likelihood.params_per_dim,
                           act=activation)

    def latent_sites(self):
        return [LatentSite("z2", self.latent_dim), LatentSite("z1", self.latent_dim1, depends_on=("z2",))]

    def make_encoder(self):
        return MLP(self.data_dim, self.hidden, None, act=self.activation)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            z2 = pyro.sample("z2", self.prior(x.shape[0], x))
            loc, scale = self.p_z1(z2)
            z1 = pyro.sample("z1", dist.Normal(loc, scale, validate_args=False).to_event(1))
            return pyro.sample("x", self.likelihood(self.decoder(torch.cat([z1, z2], dim=-1))), obs=x)

    def extra_repr(self):
        return f"data_dim={self.data_dim}, z2={self.latent_dim}, z1={self.latent_dim1}"
