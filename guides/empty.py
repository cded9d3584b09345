"""The empty guide ``none``, for models without latent variables (the flow density models of :mod:`zoo.flow_models`).

With no latent site there is nothing to infer: the guide samples nothing, so every objective of the zoo reduces to the
model's exact log-likelihood -- ``elbo`` is E_q[log p(x, z) - log q(z|x)] = log p(x) with no z, and the importance
weights of the evaluation are log w = log p(x) for every particle. A model *with* latents is refused: an empty guide
would leave its latents to be drawn from the prior inside the model trace, and Pyro's ELBO would then count log p(z)
without the matching -log q(z) (not a bound).
"""
from torch import nn

from guides.base import GUIDES
from zoo.errors import ConfigError


@GUIDES.register("none", paper="maximum likelihood for models without latent variables",
                 summary="empty guide for models with no latent sites (flow density models: nice, realnvp, glow, maf)",
                 latent_free=True, supports=())
class EmptyGuide(nn.Module):
    """Samples nothing; only for models whose ``latent_sites()`` is empty."""

    def __init__(self, model):
        super().__init__()
        sites = model.latent_sites()
        if sites and not getattr(model, "implicit", False):  # an implicit generator's noise is not inferred
            raise ConfigError(f"guide none is for models without latent variables, but model {type(model).__name__} "
                              f"has {', '.join(s.name for s in sites)}; choose a guide such as diagonal")

    def forward(self, x, y=None):
        return {}
