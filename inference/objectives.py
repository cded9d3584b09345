"""Training objectives: each gives the negative bound summed over a mini-batch, in nats, as a differentiable tensor.

* ``elbo`` -- the evidence lower bound E_q[log p(x, z) - log q(z|x)] with the analytic KL(q || p) for every latent site
  where one is registered (diagonal Gaussian guide, standard normal prior) and the Monte Carlo estimate elsewhere
  (flows, learned priors): Pyro's ``TraceMeanField_ELBO``, computed by the lean trace/replay loss of lean_elbo.py when
  the guide is fully reparameterised (proved equal to it in the tests), by Pyro's own class otherwise.
* ``iwae:K`` -- the importance-weighted bound of Burda, Grosse & Salakhutdinov 2016,
  L_K(x) = E[log (1/K) sum_k p(x, z_k) / q(z_k|x)], with the K particles vectorised in one pass; L_1 = ELBO and
  L_K increases with K towards log p(x). Written by hand (trace/replay under a particle plate) because Pyro's
  ``RenyiELBO(alpha=0)`` has no differentiable loss.

Every objective carries a KL weight (beta-VAE, KL warm-up) applied to latent sites only (see latent_scale.py).
"""
import torch
from pyro.infer import TraceMeanField_ELBO

from inference.importance import log_mean_exp, weight_terms
from inference.latent_scale import scale_latents
from inference.lean_elbo import lean_elbo_loss, lean_supported, run_traced
from zoo.registry import Registry

OBJECTIVES = Registry("objective")


class Objective:
    name = ""

    def __init__(self):
        self.kl_weight = 1.0

    def loss(self, model, guide, x, y=None) -> torch.Tensor:
        """-bound summed over the B points of the batch (divide by B for nats per point)."""
        raise NotImplementedError

    def spec(self) -> str:
        return self.name

    def _pyro_elbo(self, elbo_class, model, **options):
        """One Pyro ELBO of ``elbo_class`` per plate nesting, built once and reused every step."""
        cache = self.__dict__.setdefault("_elbos", {})
        key = model.max_plate_nesting
        if key not in cache:
            n = getattr(self, "num_particles", 1)
            cache[key] = elbo_class(num_particles=n, max_plate_nesting=key, vectorize_particles=n > 1, **options)
        return cache[key]


@OBJECTIVES.register("elbo", paper="Kingma & Welling 2014; analytic KL where registered",
                     summary="-ELBO (TraceMeanField_ELBO)")
class ELBO(Objective):
    name = "elbo"

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = num_particles

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        m, g = scale_latents(model, w), scale_latents(guide, w)
        if self.num_particles == 1:
            guide_trace = run_traced(g, x, y)
            if lean_supported(guide_trace):
                return lean_elbo_loss(m, g, x, y, guide_trace=guide_trace, checked=True)
        return self._pyro_elbo(TraceMeanField_ELBO, model).differentiable_loss(m, g, x, y)


@OBJECTIVES.register("iwae", arg="K", paper="Burda, Grosse & Salakhutdinov 2016",
                     summary="-IWAE bound with K vectorised importance samples")
class IWAE(Objective):
    def __init__(self, num_particles: int = 5):
        super().__init__()
        self.num_particles = num_particles
        self.name = f"iwae:{num_particles}"

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        terms = weight_terms(scale_latents(model, w), scale_latents(guide, w), x, y, self.num_particles,
                             max_plate_nesting=model.max_plate_nesting)
        return -log_mean_exp(terms.log_w, dim=0).sum()


def build_objective(spec) -> Objective:
    """The objective ``spec`` names (``elbo``, ``iwae:5``, ``my_objectives:Renyi:0.5``), or ``spec`` itself when it
    is already an objective (anything with ``loss(model, guide, x, y)``)."""
    if hasattr(spec, "loss") and not isinstance(spec, type):
        return spec
    entry, _ = OBJECTIVES.lookup(spec)
    if hasattr(entry.factory, "loss") and not isinstance(entry.factory, type):  # a module-level objective object
        return entry.factory
    return OBJECTIVES.build(spec)
