r"""``stl`` -- the ELBO with the path-derivative gradient ("sticking the landing", Roeder, Wu & Duvenaud 2017).

    value:     ELBO = E_q[log p(x, z) - log q(z|x)],  z = z(phi, eps) reparameterised (Monte Carlo, no analytic KL)
    gradient:  grad_phi [log p(x, z) - log q_{stop phi}(z)]    (the score term of log q dropped)

The score term has expectation zero, so the gradient is unbiased for the ELBO's; when q(z|x) equals the posterior,
grad_z [log p(x, z) - log q(z|x)] = 0 and the estimator has zero variance, where the ordinary reparameterisation
gradient keeps the score's variance. The model's parameters get the ordinary gradient. Written on Pyro traces for any
zoo model and any reparameterised guide, flows included (:mod:`inference.path_gradients`).
"""
from inference.latent_scale import scale_latents
from inference.objectives import OBJECTIVES, Objective
from inference.path_gradients import path_terms


@OBJECTIVES.register("stl", paper="Roeder, Wu & Duvenaud 2017 (sticking the landing)",
                     summary="-ELBO (Monte Carlo) with the path-derivative guide gradient: score term of log q dropped")
class StickingTheLanding(Objective):
    name = "stl"

    def __init__(self, num_particles: int = 1):
        super().__init__()
        self.num_particles = num_particles

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        t = path_terms(scale_latents(model, w), scale_latents(guide, w), x, y, self.num_particles,
                       max_plate_nesting=model.max_plate_nesting, objective=self.name)
        return -(t.log_w + t.score).mean(0).sum()
