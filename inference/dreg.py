r"""``iwae-dreg:K`` -- the IWAE bound with the doubly reparameterised gradient for the guide (Tucker, Lawson, Gu &
Maddison 2019, "Doubly reparameterized gradient estimators for Monte Carlo objectives").

    value:   L_K = log (1/K) sum_k w_k,   w_k = p(x, z_k) / q(z_k|x),  z_k = z(phi, eps_k)   (the iwae:K value)
    model:   grad_theta L_K = sum_k w~_k grad_theta log p_theta(x, z_k)                         (as iwae:K)
    guide:   grad_phi L_K  ~= sum_k w~_k^2 d log w_k / d z_k . d z_k / d phi                    (DReG, their eq. 6)

with w~_k = w_k / sum_j w_j and d/dz_k the partial derivative at fixed phi (log q_{stop phi}). The IWAE guide gradient
sum_k w~_k (d log w_k/dz_k dz_k/dphi - d log q_phi(z_k)/dphi) loses its signal-to-noise ratio as K grows (Rainforth
et al. 2018); applying the reparameterisation trick to the score term a second time gives the estimator above,
unbiased for the same gradient, whose variance falls with K.

One backward pass gives both: the surrogate is

    log mean_k exp(log p(x, g(z_k)) - stop log q_k)  -  sum_k stop(w~_k^2) (path part of log q_k)

where g is the identity whose backward multiplies the gradient reaching z_k by w~_k (the model's parameters see the
IWAE weights w~_k, the guide's see w~_k^2), and the path part of log q is that of :mod:`inference.path_gradients`
(any reparameterised guide, flows included). Parameters a prior shares with the encoder (VampPrior) keep the IWAE
gradient of the prior term.
"""
import torch

from inference.importance import log_mean_exp
from inference.latent_scale import scale_latents
from inference.objectives import OBJECTIVES, Objective
from inference.path_gradients import GradScale, path_terms


@OBJECTIVES.register("iwae-dreg", arg="K", paper="Tucker, Lawson, Gu & Maddison 2019 (DReG)",
                     summary="-IWAE bound (K particles), doubly reparameterised gradient for the guide")
class IWAEDReG(Objective):
    def __init__(self, num_particles: int = 5):
        super().__init__()
        self.num_particles = num_particles
        self.name = f"iwae-dreg:{num_particles}"

    def loss(self, model, guide, x, y=None):
        w = self.kl_weight
        box = GradScale()
        t = path_terms(scale_latents(model, w), scale_latents(guide, w), x, y, self.num_particles,
                       max_plate_nesting=model.max_plate_nesting, objective=self.name, grad_scale=box)
        log_p = t.log_obs + t.log_prior
        bound = log_mean_exp(log_p - t.log_q.detach(), dim=0)
        if not torch.is_grad_enabled():
            return -bound.sum()
        weights = torch.softmax((log_p - t.log_q).detach(), dim=0)  # w~_k, (K, B)
        box.weights = weights
        path_q = (t.log_q - t.log_q.detach()) - t.score  # value 0, gradient: path term of log q
        return -(bound - (weights ** 2 * path_q).sum(0)).sum()
