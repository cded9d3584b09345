"""The variational auto-encoder (and the beta-VAE through the objective's KL weight).

Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Rezende, Mohamed & Wierstra 2014, "Stochastic
Backpropagation and Approximate Inference in Deep Generative Models"; beta-VAE: Higgins et al. 2017.

    z ~ p(z)                        (``--prior``, standard normal by default)
    x | z ~ p(x | f_theta(z))       (Bernoulli for binary data, Gaussian for continuous data)

with f_theta an MLP (``--hidden 400,400``; ``--hidden 0`` gives the linear decoder f(z) = W z + b, whose marginal
likelihood under a Gaussian p(x|z) is the exact N(x; b, W W^T + sigma^2 I) used to test the estimators).
The KL weight beta and its linear warm-up are applied by the objective to the latent sites (poutine.scale), so every
model gets them.
"""
from typing import Optional, Sequence, Tuple

import pyro
import torch

from zoo.latents import LatentSite
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.mlp import MLP
from zoo.priors import build_prior


@MODELS.register("vae", paper="Kingma & Welling 2014; Rezende et al. 2014; beta-VAE: Higgins et al. 2017",
                 summary="MLP VAE: z ~ p(z), x ~ p(x | MLP(z))")
class VAE(ZooModel):
    """MLP variational auto-encoder; see the module docstring for the generative process."""

    def __init__(self, data_dim: int, latent_dim: int = 20, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", activation: str = "relu", prior: str = "standard",
                 sigma: float = 0.1, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        self.latent_dim, self.hidden, self.activation = latent_dim, tuple(hidden), activation
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.prior = build_prior(prior, latent_dim, data_dim=data_dim)
        # the encoder is built per guide; the decoder's hidden widths mirror it, as in the papers
        self.decoder = MLP(latent_dim, tuple(reversed(self.hidden)), data_dim * self.likelihood.params_per_dim,
                           act=activation)

    def latent_sites(self):
        return [LatentSite("z", self.latent_dim)]

    def make_encoder(self):
        return MLP(self.data_dim, self.hidden, None, act=self.activation)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            z = pyro.sample("z", self.prior(x.shape[0], x))
            return pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)
