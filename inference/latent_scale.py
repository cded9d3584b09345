"""Scale the log-densities of latent sites only: the KL weight of beta-VAEs and of KL warm-up.

-ELBO_beta(x) = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z)) = -E_q[log p(x|z) + beta log p(z) - beta log q(z|x)],
so beta multiplies the log-density of every *unobserved* sample site, in the model (log p(z)) and in the guide
(log q(z|x)); observed sites keep scale 1. This is ``poutine.scale`` restricted to latent sites.
"""
from pyro.poutine.messenger import Messenger


class LatentScaleMessenger(Messenger):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def _process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.scale * msg["scale"]


def scale_latents(fn, scale: float):
    """``fn`` with every latent sample site's log-density multiplied by ``scale`` (no-op wrapper at scale 1)."""
    if scale == 1.0:
        return fn
    return LatentScaleMessenger(scale)(fn)
