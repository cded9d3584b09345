"""Flow-GAN: one exact-likelihood model trained by maximum likelihood, adversarially, or both.

Grover, Dhar & Ermon 2018, "Flow-GAN: Combining Maximum Likelihood and Adversarial Learning in Generative Models".
A flow density model (``realnvp``, ``maf``, ``nice``, ``glow``) is both a density p_theta(x) and a sampler
x = f^{-1}(z), so the same parameters can be trained with

* ``mle`` -- min_theta -E_{P_data}[log p_theta(x)] (:mod:`inference.mle`);
* ``adv`` -- the paper's Wasserstein objective on the flow's samples: a critic V maximises
  E_{P_data}[V(x)] - E_{p_theta}[V(x~)] - LAMBDA_GP E[(||grad V(x^)||_2 - 1)^2] (the gradient penalty of Gulrajani
  et al. 2017, as in the paper's code, ``f_div="wgan"``), the flow minimises -E_{p_theta}[V(x~)];
* ``hybrid:LAMBDA`` -- min_theta -E_{P_data}[log p_theta(x)] + LAMBDA * (-E_{p_theta}[V(x~)]), the critic as in
  ``adv``. LAMBDA = 0 is exactly maximum likelihood (the adversarial term is not even evaluated for the generator's
  gradient), LAMBDA -> inf approaches ``adv``. (The paper writes the hybrid as the adversarial loss plus lambda times
  the NLL; this is the same family, parameterised by the weight of the adversarial term.)

The flow samples v = f^{-1}(z) live where the flow's density does: for 8-bit images, the dequantized space
v = (k + u)/256 in [0, 1]^D. The critic's data are dequantized the same way (the model's own ``preprocess``, fresh
uniform noise in training), as the paper's code does for its discriminator's inputs; otherwise the critic would tell
data from samples by their 256 levels alone. Bits/dim stay exact: ``zoo evaluate`` scores the flow's log-likelihood
whatever objective trained it.

Defaults: Adam lr 1e-4, betas (0.5, 0.9) (the paper's code: beta1 flag, beta2 = 0.9), one critic step per generator
step (the paper's code: ``n_critic = 1``; with WGAN-GP's five, a hybrid's NLL term would also get a fifth of the
updates of ``mle`` for the same epochs), LAMBDA_GP = 10.
"""
import torch

from inference.adversarial import WGANGP, model_samples, parse_weight
from inference.mle import MLE
from inference.objectives import OBJECTIVES
from zoo.errors import ConfigError

FLOW_GAN_DEFAULTS = dict(adversarial=True, lr=1e-4, betas=(0.5, 0.9), critic_steps=1)


def _real_for_critic(model, x):
    """The data as the flow models them (dequantized 8-bit levels), so the critic sees data and samples alike."""
    preprocess = getattr(model, "preprocess", None)
    return preprocess(x) if callable(preprocess) else x


class FlowGANObjective(WGANGP):
    """Base of ``adv`` and ``hybrid:LAMBDA``: a WGAN-GP critic on the flow's samples and dequantized data."""

    lr, betas, critic_steps = FLOW_GAN_DEFAULTS["lr"], FLOW_GAN_DEFAULTS["betas"], FLOW_GAN_DEFAULTS["critic_steps"]
    adversarial_weight = 1.0  # the weight of the adversarial term in the generator's loss
    likelihood_weight = 0.0  # the weight of the NLL (nats per point)

    def __init__(self):
        super().__init__(10.0)

    def check(self, model, guide, like):
        if not getattr(model, "exact_likelihood", False):
            name = getattr(model, "display_name", lambda: type(model).__name__)()
            raise ConfigError(f"objective {self.spec()} is Flow-GAN's: it needs a model with an exact density and a "
                              f"sampler (a flow: realnvp, maf, nice, glow), but model {name} has no exact "
                              f"log-likelihood; use wgan-gp for adversarial training of other models")
        super().check(model, guide, like)

    def critic_step(self, model, guide, critic, x):
        with torch.no_grad():
            real = _real_for_critic(model, x)
            fake = model_samples(model, x.shape[0], x)
        return self.critic_terms(critic, real, fake)

    def nll(self, model, guide, x):
        """-log p(x) per data point, mean over the batch (the model's exact log-likelihood, through Pyro)."""
        return MLE().loss(model, guide, x) / x.shape[0]

    def generator_step(self, model, guide, critic, x):
        loss = 0.0
        if self.likelihood_weight:
            loss = loss + self.likelihood_weight * self.nll(model, guide, x)
        if self.adversarial_weight:
            loss = loss + self.adversarial_weight * self.generator_loss(critic(model_samples(model, x.shape[0], x)))
        return loss

    def divergence_name(self):
        terms = [f"{w:g} {what}".removeprefix("1 ") for w, what in ((self.likelihood_weight, "NLL"),
                                                                   (self.adversarial_weight, "W1")) if w]
        return " + ".join(terms) or "0"

    @torch.no_grad()
    def validation_estimate(self, model, guide, critic, x):
        """The generator's objective on held-out data: LAMBDA_NLL * NLL + LAMBDA_ADV * (the critic's W1 estimate)."""
        value = 0.0
        if self.likelihood_weight:
            value = value + self.likelihood_weight * self.nll(model, guide, x)
        if self.adversarial_weight:
            real = _real_for_critic(model, x)
            value = value + self.adversarial_weight * self.divergence_estimate(
                critic(real), critic(model_samples(model, x.shape[0], x)))
        return torch.as_tensor(value)


@OBJECTIVES.register("adv", paper="Grover, Dhar & Ermon 2018 (Flow-GAN); Gulrajani et al. 2017",
                     summary="Flow-GAN ADV: a flow trained only adversarially (WGAN-GP critic on its samples)",
                     **FLOW_GAN_DEFAULTS)
class FlowGANAdversarial(FlowGANObjective):
    name = "adv"


@OBJECTIVES.register("hybrid", arg="LAMBDA", text_arg=True, example="1", paper="Grover, Dhar & Ermon 2018 (Flow-GAN)",
                     summary="Flow-GAN hybrid: NLL + LAMBDA x the WGAN generator loss (LAMBDA = 0: exactly MLE)",
                     **FLOW_GAN_DEFAULTS)
class FlowGANHybrid(FlowGANObjective):
    likelihood_weight = 1.0

    def __init__(self, weight="1"):
        super().__init__()
        value = self.adversarial_weight = parse_weight(
            "hybrid", weight, "weighs the adversarial term against the NLL (0: maximum likelihood alone; e.g. hybrid:1)")
        self.name = f"hybrid:{value:g}"
