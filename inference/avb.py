"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017, "Adversarial Variational Bayes: Unifying
Variational Autoencoders and Generative Adversarial Networks", ICML; without adaptive contrast).

The ELBO of a model p(x, z) = p(z) p(x|z) and a posterior q(z|x),

    ELBO(x) = E_q(z|x)[ log p(x|z) - (log q(z|x) - log p(z)) ],

needs log q(z|x), which an implicit posterior (z = f(x, eps), guide ``implicit``) does not have. AVB estimates the
log-ratio with a critic T(x, z) (a network on the concatenation [x, z], the zoo's ``mlp`` critic): logistic
regression of pairs (x, z ~ q(z|x)), labelled 1, against pairs (x, z ~ p(z)), labelled 0, on the same data x,

    critic:     min_T  E_x [ E_q(z|x) softplus(-T(x, z)) + E_p(z) softplus(T(x, z)) ]
                (= -E log sigmoid(T) on q-pairs - E log(1 - sigmoid(T)) on p-pairs),

whose minimiser is T*(x, z) = log q(z|x) - log p(z) (Mescheder et al., Proposition 1), and the encoder and decoder
maximise the ELBO with T in place of the log-ratio:

    generator:  min_{theta, phi}  E_x E_q_phi(z|x) [ T(x, z) - log p_theta(x|z) ]     (T held fixed, Algorithm 1)

with z = f_phi(x, eps) reparameterised, so the gradient flows through z into the encoder and into T's input; at
T = T*, E_q[grad_phi T*(x, z)] = 0 (Proposition 2), so holding T fixed loses nothing. log p(x|z) is the model's
observed-site log-density on the model replayed on the guide's trace; log p(z) is never evaluated: prior samples come
from the model itself (traced on the batch, its latent sites drawn by its own prior), so any prior the model has
(``standard``, ``mog:K``, ``flow:K``; ``vamp:K`` with a guide that has a density) works, hierarchies included (the
joint p(z1, z2, ...) by ancestral sampling). A KL weight (``--beta``, ``--warmup``) multiplies T in the generator's
loss.

Both T's input and the critic's output are per data point; the losses are means over the mini-batch. The validation
loss (and the recorded training loss) is the -ELBO with T in place of the log-ratio, E_q[T - log p(x|z)] in nats per
point: lower is better, and it is an estimate, not a bound, as good as T is.

``avb`` also trains an explicit guide (``diagonal``, a flow): T then estimates log q - log p that the guide could
compute, which is allowed (it tests AVB against the exact ELBO) and documented, not refused. Models whose latents are
not real-valued (m2's categorical y, svae's sphere) are refused in one line, as are implicit generators (no p(x|z)).

Defaults are those of the paper's code for MNIST (LMescheder/AdversarialVariationalBayes, experiments/avb_mnist_8):
Adam lr 1e-4 for encoder and decoder, 2e-4 for the critic, beta1 0.9, one critic step per generator step.
"""
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from pyro.poutine.util import site_is_subsample

from inference.adversarial import AdversarialObjective
from inference.importance import scaled_log_prob, sum_to_points
from inference.objectives import OBJECTIVES
from zoo.errors import ConfigError

AVB_DEFAULTS = dict(adversarial=True, lr=1e-4, critic_lr=2e-4, betas=(0.9, 0.999), critic_steps=1)


def _flat(value: torch.Tensor, shape) -> torch.Tensor:
    if len(shape) == 0:
        return value.unsqueeze(-1)
    return value.flatten(-len(shape)) if len(shape) > 1 else value


@OBJECTIVES.register("avb", paper="Mescheder, Nowozin & Geiger 2017 (AVB)",
                     summary="adversarial variational Bayes: -ELBO with a critic T(x, z) ~ log q(z|x) - log p(z) "
                             "(logistic regression of q- against p-pairs); trains implicit guides", **AVB_DEFAULTS)
class AVB(AdversarialObjective):
    name = "avb"
    critic_space = "joint"
    needs_log_q = False
    lr, critic_lr, betas, critic_steps = 1e-4, 2e-4, (0.9, 0.999), 1

    # ------------------------------------------------------------------------------------------- checks
    def check(self, model, guide, like: torch.Tensor):
        name = getattr(model, "display_name", lambda: type(model).__name__)()
        if getattr(model, "implicit", False):
            raise ConfigError(f"objective avb needs a model with a density p(x | z); model {name} is an implicit "
                              f"generator (x = G(z)): train it with gan-ns, wgan-gp or fgan:NAME")
        sites = model.latent_sites()
        if not sites:
            raise ConfigError(f"objective avb infers latents, and model {name} has none; train it with mle or elbo")
        other = [s for s in sites if s.support != "real"]
        if other:
            s = other[0]
            raise ConfigError(f"objective avb needs real-valued latents (its critic compares z ~ q with z ~ p(z) "
                              f"through a network), but model {name}'s site {s.name!r} has support {s.support}")
        with torch.no_grad():
            prior = self._prior_latents(model, like)  # the model draws its own latents (any prior)
        missing = [s.name for s in sites if s.name not in prior]
        if missing:
            raise ConfigError(f"objective avb draws p(z) by running model {name}, but its run has no latent site "
                              f"{missing[0]!r}")

    def critic_input_dim(self, model, data) -> int:
        """T sees [x, z]: the data's dimension plus every latent's size per point."""
        return data.dim + sum(s.value_size for s in model.latent_sites())

    # ------------------------------------------------------------------------------------------- samples
    @staticmethod
    def _flat_latents(model, values) -> torch.Tensor:
        return torch.cat([_flat(values[s.name], s.value_shape) for s in model.latent_sites()], dim=-1)

    def _prior_latents(self, model, x):
        trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(x)
        return {n: s["value"] for n, s in trace.nodes.items()
                if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}

    def prior_sample(self, model, x) -> torch.Tensor:
        """z ~ p(z), one per point of x, flat (B, total latent size): the model run on x (its latents drawn from its
        prior, hierarchies ancestrally; x itself does not condition them)."""
        return self._flat_latents(model, self._prior_latents(model, x))

    def posterior_sample(self, model, guide, x):
        """(z ~ q(z|x) flat (B, total latent size), log p(x|z) (B,)): the guide traced, the model replayed on it, its
        observed sites' log-densities summed per point. Differentiable in the guide's and model's parameters."""
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
        log_px = x.new_zeros(x.shape[0])
        for site in model_trace.nodes.values():
            if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
                log_px = log_px + sum_to_points(scaled_log_prob(site), log_px.shape)
        values = {s.name: guide_trace.nodes[s.name]["value"] for s in model.latent_sites()}
        return self._flat_latents(model, values), log_px

    @staticmethod
    def pairs(x, z):
        return torch.cat([x.to(z.dtype), z], dim=-1)

    # ------------------------------------------------------------------------------------------- the players
    def critic_loss_from(self, t_q, t_p):
        """-E_q log sigmoid(T) - E_p log(1 - sigmoid(T)): q-pairs labelled 1, prior pairs 0."""
        return F.softplus(-t_q).mean() + F.softplus(t_p).mean()

    def critic_step(self, model, guide, critic, x):
        """(the critic's logistic loss, the -ELBO with T on this batch), z ~ q and z ~ p(z) detached."""
        with torch.no_grad():
            z_q, log_px = self.posterior_sample(model, guide, x)
            z_p = self.prior_sample(model, x)
        t_q, t_p = critic(self.pairs(x, z_q)), critic(self.pairs(x, z_p))
        return self.critic_loss_from(t_q, t_p), (t_q.detach() - log_px).mean()

    def generator_step(self, model, guide, critic, x):
        """E_q[kl_weight T(x, z) - log p(x|z)], mean over the batch; the critic's weights frozen by the loop."""
        z_q, log_px = self.posterior_sample(model, guide, x)
        return (self.kl_weight * critic(self.pairs(x, z_q)) - log_px).mean()

    @torch.no_grad()
    def validation_estimate(self, model, guide, critic, x):
        """-ELBO with T for the log-ratio on held-out x (nats per point; lower is better)."""
        z_q, log_px = self.posterior_sample(model, guide, x)
        return (critic(self.pairs(x, z_q)) - log_px).mean()

    def divergence_name(self):
        return "-ELBO (T for log q - log p)"
