"""The adversarial auto-encoder, ``aae[:LAMBDA]``: the ELBO's KL term replaced by an adversarial match of the aggregate
posterior to the prior.

Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016, "Adversarial Autoencoders". With q(z) = E_{p_data(x)} q(z|x) the
aggregate posterior, the encoder (the guide) and decoder (the model) minimise

    -E_{q(z|x)} log p(x | z)  +  LAMBDA * (-E_{q(z|x)} log D(z))        (per data point)

the reconstruction term and the non-saturating generator loss of a *latent* critic D = sigmoid(V(z)), which is trained
to separate prior samples z ~ p(z) (label 1) from encoded points z ~ q(z|x) (label 0): at its optimum the game
minimises JSD(q(z) || p(z)) (Goodfellow et al. 2014) instead of the per-point KL(q(z|x) || p(z)) of the ELBO. The
prior is whatever the model samples at its latent sites (the model run without a guide), so ``--prior mog:10`` gives
the paper's mixture-prior AAE and any zoo prior works; the encoder is the guide: ``deterministic`` (z = mu(x)) or
``diagonal`` (the Gaussian posterior, Section 2.1). The critic sees the model's latent sites concatenated (flat
vectors; ``--critic mlp`` by default, sized by the latent dimension).

The validation loss is the generator's objective on held-out data with the critic's estimate of the divergence:
reconstruction + LAMBDA (2 JSD - log 4 + log 4). Models whose latents are not real vectors (categorical, sphere)
are refused in one line.
"""
import pyro.poutine as poutine
import torch

from inference.adversarial import NonSaturatingGAN, parse_weight
from inference.objectives import OBJECTIVES
from zoo.errors import ConfigError

AAE_DEFAULTS = dict(adversarial=True, lr=1e-3, betas=(0.5, 0.999), critic_steps=1)


def _flat_latents(trace, sites) -> torch.Tensor:
    """The values of ``sites`` in a trace, each flattened per data point and concatenated: (B, sum of sizes)."""
    parts = []
    for site in sites:
        value = trace.nodes[site.name]["value"]
        parts.append(value.reshape(value.shape[0], -1) if value.dim() > 1 else value.unsqueeze(-1))
    return torch.cat(parts, dim=-1)


def _observed_log_prob(trace) -> torch.Tensor:
    """sum over the trace's observed sites of log p (scaled and masked as Pyro does), summed over the batch."""
    trace.compute_log_prob()
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and site["is_observed"]:
            total = total + site["log_prob"].sum()
    return total


@OBJECTIVES.register("aae", arg="LAMBDA", text_arg=True, optional_arg=True,
                     paper="Makhzani et al. 2016 (adversarial auto-encoder)",
                     summary="reconstruction + LAMBDA x a latent critic matching q(z) to p(z) (LAMBDA = 1 unless "
                             "given); guide deterministic or diagonal, any prior", **AAE_DEFAULTS)
class AAE(NonSaturatingGAN):
    critic_space = "latent"
    lr, betas, critic_steps = AAE_DEFAULTS["lr"], AAE_DEFAULTS["betas"], AAE_DEFAULTS["critic_steps"]

    def __init__(self, weight="1"):
        super().__init__()
        self.weight = value = parse_weight("aae", weight, "weighs the latent critic's term against the "
                                                          "reconstruction (e.g. aae:1)")
        self.name = "aae" if value == 1.0 else f"aae:{value:g}"

    def check(self, model, guide, like):
        name = getattr(model, "display_name", lambda: type(model).__name__)()
        if model.implicit:
            raise ConfigError(f"objective {self.spec()} auto-encodes, but model {name} is an implicit generator with "
                              f"no decoder density; use gan-ns or wgan-gp")
        sites = model.latent_sites()
        if not sites:
            raise ConfigError(f"objective {self.spec()} matches the latents' aggregate posterior to the prior, but "
                              f"model {name} has no latent variables")
        bad = [s for s in sites if s.support != "real"]
        if bad:
            raise ConfigError(f"objective {self.spec()} needs real-valued latents (its critic compares vectors), but "
                              f"model {name}'s site {bad[0].name!r} has support {bad[0].support}")

    def critic_input_dim(self, model, data) -> int:
        return sum(s.value_size for s in model.latent_sites())

    def _posterior(self, model, guide, x):
        """(z ~ q(z|x) concatenated, the guide's trace)."""
        guide_trace = poutine.trace(poutine.block(guide, hide_types=["param"])).get_trace(x, None)
        return _flat_latents(guide_trace, model.latent_sites()), guide_trace

    def _prior(self, model, x):
        """z ~ p(z): the model run without a guide samples its latents from its prior."""
        trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(x, None)
        return _flat_latents(trace, model.latent_sites())

    def reconstruction(self, model, guide_trace, x) -> torch.Tensor:
        """-E_q log p(x | z) per data point (one sample of q), the model replayed on the guide's latents."""
        model_trace = poutine.trace(poutine.replay(poutine.block(model, hide_types=["param"]),
                                                   trace=guide_trace)).get_trace(x, None)
        return -_observed_log_prob(model_trace) / x.shape[0]

    def critic_step(self, model, guide, critic, x):
        with torch.no_grad():
            z_q, _ = self._posterior(model, guide, x)
            z_p = self._prior(model, x)
        return self.critic_terms(critic, z_p, z_q)  # the prior plays the data

    def generator_step(self, model, guide, critic, x):
        z_q, guide_trace = self._posterior(model, guide, x)
        loss = self.reconstruction(model, guide_trace, x)
        if self.weight:
            loss = loss + self.weight * self.generator_loss(critic(z_q))
        return loss

    @torch.no_grad()
    def divergence_name(self):
        return "-log p(x|z)" + (f" + {self.weight:g} (2 JSD)" if self.weight else "")

    def validation_estimate(self, model, guide, critic, x):
        z_q, guide_trace = self._posterior(model, guide, x)
        value = self.reconstruction(model, guide_trace, x)
        if self.weight:
            value = value + self.weight * self.divergence_estimate(critic(self._prior(model, x)), critic(z_q))
        return value
