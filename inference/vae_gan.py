"""VAE-GAN: the ELBO plus an adversarial term that sharpens the samples, ``elbo+gan:LAMBDA``.

Larsen, Sonderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned similarity metric", in the
seed's form "add -JSD(p_data, p(x)) to get sharper samples": the model and guide minimise

    -ELBO(x) + LAMBDA * (-E_{z ~ p(z)} log D(x~(z)))        (per data point, the non-saturating generator loss)

while a critic D = sigmoid(V) separates data from the model's samples x~(z) (the GAN critic of Goodfellow et al.
2014, at the optimum 2 JSD(p_data || p_theta) - log 4). The samples are x~ ~ p(x | z) where p(x | z) is
reparameterisable (a Gaussian likelihood), else its mean E[x | z] (a Bernoulli decoder's probabilities: the decoder
output Larsen et al.'s discriminator sees). LAMBDA = 0 is exactly the ELBO. The ELBO term keeps the model's KL weight
(``--beta``, ``--warmup``). The validation loss is the generator's objective on held-out data: -ELBO + LAMBDA times the
critic's estimate of 2 JSD.

(Larsen et al. also replace the pixel likelihood by a feature-space one from the discriminator's hidden layer; that is
not done here: the likelihood stays the model's own, so the ELBO and the NLL stay the zoo's.)
"""
import torch

from inference.adversarial import NonSaturatingGAN, model_samples, parse_weight
from inference.objectives import ELBO, OBJECTIVES
from zoo.errors import ConfigError

VAE_GAN_DEFAULTS = dict(adversarial=True, lr=1e-3, betas=(0.5, 0.999), critic_steps=1)


@OBJECTIVES.register("elbo+gan", arg="LAMBDA", text_arg=True, example="1",
                     paper="Larsen et al. 2016 (VAE-GAN); Goodfellow et al. 2014",
                     summary="-ELBO + LAMBDA x the non-saturating GAN loss of the model's samples (a data critic)",
                     **VAE_GAN_DEFAULTS)
class VAEGAN(NonSaturatingGAN):
    lr, betas, critic_steps = VAE_GAN_DEFAULTS["lr"], VAE_GAN_DEFAULTS["betas"], VAE_GAN_DEFAULTS["critic_steps"]

    def __init__(self, weight="1"):
        super().__init__()
        self.weight = value = parse_weight("elbo+gan", weight, "weighs the adversarial term against the ELBO (0: the "
                                                               "ELBO alone; e.g. elbo+gan:1)")
        self.name = f"elbo+gan:{value:g}"
        self.elbo = ELBO()

    def check(self, model, guide, like):
        name = getattr(model, "display_name", lambda: type(model).__name__)()
        if model.implicit:
            raise ConfigError(f"objective {self.spec()} needs the ELBO, but model {name} is an implicit generator "
                              f"(no density); use gan-ns or wgan-gp")
        if getattr(guide, "implicit", False):
            raise ConfigError(f"objective {self.spec()} needs log q(z|x), but guide {type(guide).__name__} has no "
                              f"density; choose a guide such as diagonal")

    def _samples(self, model, like):
        return model_samples(model, like.shape[0], like, mean_if_discrete=True)

    def negative_elbo(self, model, guide, x):
        self.elbo.kl_weight = self.kl_weight
        return self.elbo.loss(model, guide, x) / x.shape[0]

    def critic_step(self, model, guide, critic, x):
        with torch.no_grad():
            fake = self._samples(model, x)
        return self.critic_terms(critic, x, fake)

    def generator_step(self, model, guide, critic, x):
        loss = self.negative_elbo(model, guide, x)
        if self.weight:
            loss = loss + self.weight * self.generator_loss(critic(self._samples(model, x)))
        return loss

    @torch.no_grad()
    def divergence_name(self):
        return "-ELBO" + (f" + {self.weight:g} (2 JSD)" if self.weight else "")

    def validation_estimate(self, model, guide, critic, x):
        saved, self.kl_weight = self.kl_weight, 1.0
        try:
            value = self.negative_elbo(model, guide, x)
        finally:
            self.kl_weight = saved
        if self.weight:
            value = value + self.weight * self.divergence_estimate(critic(x), critic(self._samples(model, x)))
        return value
