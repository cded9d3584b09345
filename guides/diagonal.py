"""The amortized diagonal Gaussian guide (Kingma & Welling 2014).

    q(z | x) = N(z; mu(h), diag(sigma(h)^2)),    h = h(x),    sigma = softplus(.) + 1e-5

one linear head per latent site on the model's feature extractor (and on the site's parents, for hierarchies).
"""
import torch.nn.functional as F
from torch import nn

from zoo.distributions.same_shape import diagonal_normal
from zoo.networks.precision import full_precision

from guides.base import GUIDES, AmortizedGuide


class GaussianHeads(nn.Module):
    """Per-site linear heads emitting (loc, scale) of a diagonal Gaussian."""

    def __init__(self, sites, input_dims):
        super().__init__()
        self.heads = nn.ModuleDict({s.name: nn.Linear(input_dims[s.name], 2 * s.dim) for s in sites})

    def local_parameter_heads(self):
        """Each site's linear head, whose output is (loc, scale before the softplus) per point."""
        return {f"{name} (loc, scale)": head for name, head in self.heads.items()}

    def forward(self, name, context):
        loc, raw = full_precision(self.heads[name](context)).chunk(2, dim=-1)  # fp32 log-densities under bf16 autocast
        return loc, F.softplus(raw) + 1e-5


@GUIDES.register("diagonal", paper="Kingma & Welling 2014", summary="amortized diagonal Gaussian q(z|x)",
                 supports=("real",))
class DiagonalGuide(AmortizedGuide):
    """q(z|x) = N(mu(x), diag sigma(x)^2) for every latent site; see the module docstring."""

    def __init__(self, model):
        super().__init__(model)
        self.gaussian = GaussianHeads(self.sites, self.input_dims)

    def site_distribution(self, site, context):
        loc, scale = self.gaussian(site.name, context)
        return diagonal_normal(loc, scale)  # Normal(loc, scale).to_event(1); Pyro's plate need not copy it

    def local_parameter_heads(self):
        """(loc, raw scale) of each site: the inference gap's local q frees them per point."""
        return self.gaussian.local_parameter_heads()
