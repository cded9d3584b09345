r"""The hyperspherical VAE (S-VAE) of Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical Variational
Auto-Encoders" (UAI 2018).

    z ~ U(S^{m-1})                  the uniform distribution on the unit sphere of R^m (m = ``--latent-dim``)
    x | z ~ p(x | f_theta(z))       (Bernoulli for binary data, Gaussian / discretized logistic for grey levels)

with f_theta an MLP (``--hidden``, mirrored from the encoder's widths as in :mod:`zoo.vae`). The latent is declared
with support ``"sphere"``, so only a guide for that support can be paired with it: ``vmf`` (guides/von_mises_fisher.py,
q(z|x) = vMF(mu(x), kappa(x)), the paper's posterior), which is also the guide the CLI picks when ``--guide`` is not
given (registry metadata ``guide="vmf"``); the Gaussian guides (diagonal, the flows) refuse the model in one line.

The ``elbo`` objective uses the closed-form KL(vMF(mu, kappa) || U(S^{m-1})) = kappa A_m(kappa) + log C_m(kappa) +
log |S^{m-1}| (registered with ``torch.distributions.kl_divergence`` in :mod:`zoo.distributions.von_mises_fisher`),
which the lean ELBO and ``TraceMeanField_ELBO`` pick up; ``iwae:K`` and the importance-sampled log p(x) use the vMF
density and the constant prior density -log |S^{m-1}|. The vMF sampler is reparameterised (Wood's rejection sampler
with the paper's g_rep gradient); see :class:`~zoo.distributions.VonMisesFisher` for the rejection correction.

The prior is fixed (the uniform is the point of the model), so ``--prior`` does not apply (a one-line ConfigError).
"""
from typing import Optional, Sequence, Tuple

import pyro
import torch

from zoo.distributions.von_mises_fisher import HypersphericalUniform
from zoo.errors import ConfigError
from zoo.latents import LatentSite
from zoo.likelihoods import build_likelihood
from zoo.model import MODELS, ZooModel, data_plate
from zoo.networks.mlp import MLP


@MODELS.register("svae", paper="Davidson et al. 2018 (hyperspherical VAE, S-VAE)",
                 summary="z ~ uniform on the sphere S^{m-1}, x ~ p(x | MLP(z)); von Mises-Fisher guide vmf",
                 guide="vmf")
class SVAE(ZooModel):
    """Hyperspherical VAE; see the module docstring. ``latent_dim`` is m, the ambient dimension (z in S^{m-1})."""

    def __init__(self, data_dim: int, latent_dim: int = 10, hidden: Sequence[int] = (400,),
                 likelihood: str = "bernoulli", activation: str = "relu", sigma: float = 0.1,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, image_shape)
        if latent_dim < 2:
            raise ConfigError(f"svae: the latent lives on the sphere S^(m-1) of R^m and needs m = --latent-dim >= 2, "
                              f"got {latent_dim}")
        self.latent_dim, self.hidden, self.activation = latent_dim, tuple(hidden), activation
        self.likelihood = build_likelihood(likelihood, data_dim, sigma=sigma)
        self.decoder = MLP(latent_dim, tuple(reversed(self.hidden)), data_dim * self.likelihood.params_per_dim,
                           act=activation)

    def latent_sites(self):
        return [LatentSite("z", self.latent_dim, support="sphere")]

    def make_encoder(self):
        return MLP(self.data_dim, self.hidden, None, act=self.activation)

    def prior(self, batch_size: int, like: torch.Tensor):
        """p(z) = U(S^{m-1}) with batch shape (batch_size,), on ``like``'s device and dtype."""
        return HypersphericalUniform(self.latent_dim, batch_shape=(batch_size,), dtype=like.dtype,
                                     device=like.device)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        with data_plate(x):
            z = pyro.sample("z", self.prior(x.shape[0], x))
            return pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def extra_repr(self):
        return f"data_dim={self.data_dim}, sphere=S^{self.latent_dim - 1}"
