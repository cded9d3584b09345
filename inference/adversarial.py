"""Adversarial objectives: a generator p_theta(x) seen only through its samples, and a critic V_omega(x).

Each objective gives the critic's loss (minimised over omega) and the generator's loss (minimised over theta) from the
critic's raw outputs v_p = V(x) on data x ~ P and v_q = V(x~) on samples x~ ~ Q_theta:

* ``gan`` -- Goodfellow et al. 2014, the minimax game with D(x) = sigmoid(V(x)):
  max_omega E_P[log D(x)] + E_Q[log(1 - D(x~))] = 2 JSD(P || Q) - log 4 at the optimal critic; the generator
  minimises E_Q[log(1 - D(x~))] (saturating: its gradient vanishes when D rejects every sample).
* ``gan-ns`` -- the same critic, the non-saturating generator loss -E_Q[log D(x~)] (Goodfellow et al. 2014, 3).
* ``fgan:NAME`` -- f-GAN (Nowozin, Cseke & Tomioka 2016): the variational bound
  D_f(P || Q) >= sup_T E_P[T(x)] - E_Q[f*(T(x))] with T = g_f(V) for every row of the f-divergence table
  (:mod:`inference.f_divergences`); the critic maximises the bound, the generator minimises it (the saddle point
  of Nowozin et al., eq. 6: its -E_Q[f*(g_f(V))] term).
* ``wgan-gp`` / ``wgan-gp:LAMBDA`` -- Gulrajani et al. 2017: the critic maximises E_P[V] - E_Q[V] (the Kantorovich-
  Rubinstein dual of W_1) minus LAMBDA E[(||grad V(x^)||_2 - 1)^2] at x^ = e x + (1 - e) x~, e ~ U[0, 1] per pair
  (LAMBDA = 10); the generator minimises -E_Q[V].

Samples are drawn from the model as a Pyro program: the model is traced on a placeholder batch and its observed site
``"x"`` gives x~ = rsample() (a point mass G(z) for an implicit generator, a reparameterised sample for a flow or a
Gaussian likelihood), so any model whose p(x | ...) is reparameterisable can be trained adversarially; one whose
p(x | ...) cannot be sampled differentiably (a Bernoulli) is refused in one line.

The default optimiser settings are the papers': Adam lr 2e-4, betas (0.5, 0.999), one critic step per generator step
for the GAN and f-GAN objectives (Radford et al. 2016); Adam lr 1e-4, betas (0, 0.9), five critic steps for WGAN-GP
(Gulrajani et al. 2017, Algorithm 1).
"""
import math

import pyro.poutine as poutine
import torch
import torch.nn.functional as F

from inference.objectives import OBJECTIVES, Objective
from zoo.errors import ConfigError

# samples_only: the objective sees the model through its samples alone, so it trains any implicit generator
GAN_DEFAULTS = dict(adversarial=True, samples_only=True, lr=2e-4, betas=(0.5, 0.999), critic_steps=1)
WGAN_DEFAULTS = dict(adversarial=True, samples_only=True, lr=1e-4, betas=(0.0, 0.9), critic_steps=5)


def parse_weight(name: str, text, what: str) -> float:
    """The ``:LAMBDA`` of ``name:LAMBDA`` as a finite number >= 0, or a one-line ConfigError saying what it weighs
    (``what``: e.g. "weighs the adversarial term against the NLL")."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}:{text}: LAMBDA must be a number >= 0; it {what}")
    return value


def is_adversarial(objective) -> bool:
    return bool(getattr(objective, "adversarial", False))


def model_samples(model, n: int, like: torch.Tensor, mean_if_discrete: bool = False) -> torch.Tensor:
    """n samples x~ of the model's observed site, differentiable in the model's parameters: (n, D). With
    ``mean_if_discrete`` a p(x | z) that cannot be reparameterised (a Bernoulli) gives its mean E[x | z] instead, the
    decoder output that VAE-GAN's critic sees (Larsen et al. 2016)."""
    placeholder = like.new_zeros(n, model.data_dim)
    trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(placeholder)
    fn = trace.nodes["x"]["fn"]
    if mean_if_discrete and not fn.has_rsample:
        return fn.mean
    return fn.rsample()


def check_can_sample(model, objective, like: torch.Tensor):
    """Refuse, in one line, a model whose samples are not differentiable in its parameters."""
    name = getattr(model, "display_name", lambda: type(model).__name__)()
    with torch.no_grad():
        trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(like.new_zeros(2, model.data_dim))
    if "x" not in trace.nodes:
        raise ConfigError(f"model {name} has no observed site 'x' to draw samples from")
    fn = trace.nodes["x"]["fn"]
    if not getattr(fn, "has_rsample", False):
        raise ConfigError(f"objective {objective.spec()} trains a model through its samples, but model {name}'s "
                          f"p(x | ...) ({type(fn).__name__}) cannot be sampled differentiably; use an implicit "
                          f"generator (--model gan or dcgan), a flow, or a reparameterisable likelihood")


class AdversarialObjective(Objective):
    """Base of the two-player objectives: losses from the critic's raw outputs (means over the batch).

    The two-player loop calls :meth:`critic_step` and :meth:`generator_step` with the model, the guide, the critic and
    a mini-batch of data; here they compare data with the model's samples, and hybrids (AAE, AVB, InfoGAN, Flow-GAN,
    VAE-GAN) override them (a critic on latents, a likelihood term beside the adversarial one). :attr:`critic_space`
    says what the critic sees: ``"data"`` (x), ``"latent"`` (z) or ``"joint"`` ((x, z) concatenated)."""

    adversarial = True
    critic_space = "data"
    lr, betas, critic_steps = GAN_DEFAULTS["lr"], GAN_DEFAULTS["betas"], GAN_DEFAULTS["critic_steps"]

    def check(self, model, guide, like: torch.Tensor):
        """Refuse, in one line, a model (and guide) this objective cannot train; called once at build time."""
        check_can_sample(model, self, like)

    def critic_step(self, model, guide, critic, x):
        """(the critic's loss, the divergence estimate) on data x against as many fresh samples (not differentiated
        through the model)."""
        with torch.no_grad():
            fake = model_samples(model, x.shape[0], x)
        return self.critic_terms(critic, x, fake)

    def generator_step(self, model, guide, critic, x):
        """The loss the model (and guide) minimise on this mini-batch, the critic held fixed."""
        return self.generator_loss(critic(model_samples(model, x.shape[0], x)))

    @torch.no_grad()
    def validation_estimate(self, model, guide, critic, x):
        """The divergence estimate on held-out data x (the validation loss: lower is better; no regulariser)."""
        return self.divergence_estimate(critic(x), critic(model_samples(model, x.shape[0], x)))

    def critic_terms(self, critic, x_real: torch.Tensor, x_fake: torch.Tensor):
        """(the critic's loss, the divergence estimate, detached) on a batch of data and one of samples."""
        v_p, v_q = critic(x_real), critic(x_fake)
        loss = self.critic_loss_from(v_p, v_q) + self.regularizer(critic, x_real, x_fake)
        return loss, self.divergence_estimate(v_p, v_q).detach()

    def critic_loss_from(self, v_p, v_q) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self, critic, x_real, x_fake):
        """A penalty on the critic added to its loss (WGAN-GP's gradient penalty); 0 for the others."""
        return 0.0

    def generator_loss(self, v_q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def divergence_estimate(self, v_p, v_q) -> torch.Tensor:
        """The critic's estimate of the divergence the objective minimises (lower is better for the generator): the
        validation loss of adversarial runs."""
        return -self.critic_loss_from(v_p, v_q)

    def divergence_name(self) -> str:
        """What this objective records as a run's train_loss / valid_loss (:meth:`validation_estimate`): the axis label
        of the report's figure of two-player runs."""
        return "divergence"

    def loss(self, model, guide, x, y=None):
        raise ConfigError(f"objective {self.spec()} is adversarial: it has no single loss of model and guide; train "
                          f"it with the two-player loop (zoo train does)")


@OBJECTIVES.register("gan", paper="Goodfellow et al. 2014", summary="minimax GAN (saturating generator loss); "
                     "critic: 2 JSD - log 4", **GAN_DEFAULTS)
class MinimaxGAN(AdversarialObjective):
    name = "gan"

    def critic_loss_from(self, v_p, v_q):
        # -(E_P log sigmoid(v) + E_Q log(1 - sigmoid(v)))
        return F.softplus(-v_p).mean() + F.softplus(v_q).mean()

    def generator_loss(self, v_q):
        return -F.softplus(v_q).mean()  # E_Q log(1 - D)

    def divergence_estimate(self, v_p, v_q):
        return math.log(4.0) - self.critic_loss_from(v_p, v_q)  # a lower bound on 2 JSD(P || Q)

    def divergence_name(self):
        return "2 JSD"


@OBJECTIVES.register("gan-ns", paper="Goodfellow et al. 2014 (non-saturating)",
                     summary="GAN with the non-saturating generator loss -E log D(G(z))", **GAN_DEFAULTS)
class NonSaturatingGAN(MinimaxGAN):
    name = "gan-ns"

    def generator_loss(self, v_q):
        return F.softplus(-v_q).mean()  # -E_Q log D


@OBJECTIVES.register("fgan", arg="NAME", text_arg=True, example="kl", paper="Nowozin, Cseke & Tomioka 2016 (f-GAN)",
                     summary="variational f-divergence minimisation; NAME: a row of the f-divergence table "
                             "(kl, reverse-kl, pearson, jensen-shannon, alpha:A, ...)", **GAN_DEFAULTS)
class FGAN(AdversarialObjective):
    def __init__(self, divergence: str = "jensen-shannon"):
        super().__init__()
        from inference.f_divergences import build_divergence

        self.divergence = build_divergence(str(divergence))
        self.name = f"fgan:{self.divergence.spec()}"

    def critic_loss_from(self, v_p, v_q):
        return self.divergence.critic_loss(v_p, v_q)

    def generator_loss(self, v_q):
        return self.divergence.generator_loss(v_q)

    def divergence_estimate(self, v_p, v_q):
        return self.divergence.bound(v_p, v_q)

    def divergence_name(self):
        return f"D_f ({self.divergence.spec()})"


@OBJECTIVES.register("wgan-gp", arg="LAMBDA", text_arg=True, optional_arg=True, paper="Gulrajani et al. 2017 (WGAN-GP)",
                     summary="Wasserstein GAN with gradient penalty (LAMBDA = 10 unless given)", **WGAN_DEFAULTS)
class WGANGP(AdversarialObjective):
    lr, betas, critic_steps = WGAN_DEFAULTS["lr"], WGAN_DEFAULTS["betas"], WGAN_DEFAULTS["critic_steps"]

    def __init__(self, penalty=10.0):
        super().__init__()
        self.penalty = parse_weight("wgan-gp", penalty, "weighs the gradient penalty (Gulrajani et al. use 10, the "
                                                        "default of plain wgan-gp)")
        self.name = "wgan-gp" if self.penalty == 10.0 else f"wgan-gp:{self.penalty:g}"

    def gradient_penalty(self, critic, x_real, x_fake):
        """E[(||grad_x V(x^)||_2 - 1)^2] on random interpolates x^ of real and generated points (one e per pair)."""
        eps = torch.rand(x_real.shape[0], 1, dtype=x_real.dtype, device=x_real.device)
        x_hat = (eps * x_real + (1 - eps) * x_fake).requires_grad_(True)
        v = critic(x_hat)
        (grad,) = torch.autograd.grad(v.sum(), x_hat, create_graph=True)
        return ((grad.norm(dim=-1) - 1) ** 2).mean()

    def regularizer(self, critic, x_real, x_fake):
        return self.penalty * self.gradient_penalty(critic, x_real, x_fake)

    def critic_loss_from(self, v_p, v_q):
        return v_q.mean() - v_p.mean()

    def generator_loss(self, v_q):
        return -v_q.mean()

    def divergence_name(self):
        return "W1 estimate"
