r"""The amortized von Mises-Fisher guide for latents on the unit sphere (Davidson et al. 2018, hyperspherical VAE).

    q(z | x) = vMF(z; mu(h), kappa(h)),    h = h(x),    mu = a / ||a||,    kappa = softplus(b) + 1

with (a, b) = one linear head per latent site on the model's feature extractor (and on the site's parents); the
paper's encoder emits the mean direction normalised and the concentration through a softplus (+1 keeps kappa away
from 0, as in the paper's code). ``supports = ("sphere",)``: it is built only for models whose latents live on the
sphere (``svae``), and the Gaussian guides refuse those models in one line (:class:`guides.base.AmortizedGuide`).
Samples are reparameterised (:class:`zoo.distributions.VonMisesFisher`), so the lean ELBO / ``TraceMeanField_ELBO``
use the closed-form KL to the uniform prior.
"""
import torch.nn.functional as F
from torch import nn

from guides.base import GUIDES, AmortizedGuide
from zoo.distributions.von_mises_fisher import VonMisesFisher


@GUIDES.register("vmf", paper="Davidson et al. 2018 (hyperspherical VAE)",
                 summary="amortized von Mises-Fisher q(z|x) = vMF(mu(x), kappa(x)) for latents on the sphere (svae)",
                 supports=("sphere",))
class VonMisesFisherGuide(AmortizedGuide):
    """q(z|x) = vMF(mu(x), kappa(x)) for every (spherical) latent site; see the module docstring."""

    supports = ("sphere",)

    def __init__(self, model):
        super().__init__(model)
        self.heads = nn.ModuleDict({s.name: nn.Linear(self.input_dims[s.name], s.dim + 1) for s in self.sites})

    def site_parameters(self, site, context):
        """(mu, kappa): unit mean directions (..., m) and concentrations (...,) for the per-point ``context``."""
        out = self.heads[site.name](context)
        return F.normalize(out[..., :-1], dim=-1), F.softplus(out[..., -1]) + 1.0

    def local_parameter_heads(self):
        """Each site's linear head: (mean direction before normalising, concentration before the softplus)."""
        return {f"{name} (mu, kappa)": head for name, head in self.heads.items()}

    def site_distribution(self, site, context):
        loc, concentration = self.site_parameters(site, context)
        return VonMisesFisher(loc, concentration, validate_args=False)
