"""Amortized normalizing-flow guides: q(z_T | x) = q(z_0 | x) pushed through T invertible maps.

    z_0 ~ N(mu(h), diag sigma(h)^2),   z_t = f_t(z_{t-1}; phi_t(h)),   h = h(x)
    log q(z_T | x) = log q(z_0 | x) - sum_t log |det d z_t / d z_{t-1}|

so that ln p(x) >= E_q0[ln p(x | z_T) + ln p(z_T) - ln q(z_0|x) + sum_t ln|det dz_t/dz_{t-1}|]  (Rezende & Mohamed
2015). Amortized as in the papers: the encoder emits *every* flow parameter phi_t per data point from its context h
(Householder vectors, Sylvester R1, R2, b and Q, planar u, w, b, radial z0, alpha, beta; IAF takes h as the context of
its MADE, Kingma et al. 2016). Each family is a registered guide ``family:K`` with K flow steps, built for any model
with real-valued latents; the transforms live in :mod:`guides.transforms` and are checked against the autograd
Jacobian. Options of a family (``num_ortho_vecs`` for sylvester-o, ``num_householder`` for sylvester-h,
``count_transforms`` for householder, ``hidden_dims`` of the hypernetworks) come as keyword arguments
(``zoo train --guide sylvester-o:4 --guide-option num_ortho_vecs=8``).
"""
import pyro.distributions as dist
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn

from guides.base import GUIDES, AmortizedGuide
from guides.diagonal import GaussianHeads
from guides.transforms import FLOW_FAMILIES, ParamHead, make_conditional_flow


class FlowGuide(AmortizedGuide):
    """A diagonal Gaussian base per latent site followed by ``num_layers`` amortized steps of one flow family."""

    def __init__(self, model, family: str, num_layers: int, **options):
        super().__init__(model)
        self.family, self.num_layers = family, num_layers
        self.gaussian = GaussianHeads(self.sites, self.input_dims)
        self.flows = nn.ModuleDict({
            s.name: nn.ModuleList(make_conditional_flow(family, s.dim, self.input_dims[s.name], num_layers, **options))
            for s in self.sites})

    def site_distribution(self, site, context):
        loc, scale = self.gaussian(site.name, context)
        base = dist.Normal(loc, scale, validate_args=False).to_event(1)
        return dist.TransformedDistribution(base, [f.condition(context) for f in self.flows[site.name]],
                                            validate_args=False)

    def local_parameter_heads(self):
        """The base's (loc, raw scale) and every flow step's per-point parameters: the output of its hypernetwork
        (planar, radial, householder, Sylvester), or for IAF, whose context enters the MADE's first layer, that
        layer's output (a per-point bias of the first hidden layer; the MADE's weights stay shared). None when a step
        is of another kind."""
        heads = self.gaussian.local_parameter_heads()
        for name, steps in self.flows.items():
            for i, step in enumerate(steps):
                net = getattr(step, "nn", None)
                if isinstance(net, ParamHead):
                    heads[f"{name} {self.family} step {i + 1}"] = net.net
                elif isinstance(net, ConditionalAutoRegressiveNN):
                    heads[f"{name} {self.family} step {i + 1} (first MADE layer)"] = net.layers[0]
                else:
                    return None
        return heads


def _register(family):
    def factory(num_layers, model, **options):
        return FlowGuide(model, family.name, num_layers, **options)

    factory.__doc__ = f"{family.name}:K -- {family.summary}"
    GUIDES.register(family.name, paper=family.paper, summary=f"amortized {family.name} flow: {family.summary}",
                    arg="K", supports=("real",))(factory)


for _family in FLOW_FAMILIES.values():
    _register(_family)
