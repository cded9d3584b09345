"""``mle``: maximum likelihood, -sum_i log p(x_i), for models without latent variables (flow density models).

The same number as ``elbo`` with the empty guide (``--guide none``), without running a guide or Pyro's ELBO
machinery: the model is traced once and the log-densities of its observed sites (with their plate scales and masks)
are summed. A model with latent sites is refused (their log p(z) would be counted without a matching -log q(z)).
"""
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample

from inference.objectives import OBJECTIVES, Objective
from zoo.errors import ConfigError


@OBJECTIVES.register("mle", paper="maximum likelihood (exact log-likelihood of models without latents)",
                     summary="-log p(x) of a model with no latent sites (flows); guide none")
class MLE(Objective):
    name = "mle"

    def loss(self, model, guide, x, y=None):
        trace = poutine.trace(model).get_trace(x, y)
        latent = [name for name, site in trace.nodes.items()
                  if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)]
        if latent:
            raise ConfigError(f"objective mle needs a model without latent variables, but {type(model).__name__} "
                              f"samples {', '.join(latent)}; use elbo or iwae:K with a guide")
        return -trace.log_prob_sum()
