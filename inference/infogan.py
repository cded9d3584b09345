"""The InfoGAN objective (Chen et al. 2016): the non-saturating GAN plus lambda times a mutual-information lower bound.

    min_{G, Q} max_D  V(D, G) - lambda L_I(G, Q)                                          (Chen et al., eq. 5)
    L_I(G, Q) = E_{c ~ p(c), x ~ G(z, c)}[log Q(c | x)] + H(c)  <=  I(c; G(z, c))         (eq. 4)

The bound holds for any Q because I(c; x) = H(c) - H(c | x) and E[log Q(c | x)] = -H(c | x) - E_x KL(P(c | x) || Q(c
| x)) <= -H(c | x); for a discrete code it is moreover at most H(c) (log Q <= 0), with equality exactly when Q recovers
c from x without error. For a continuous code the bound involves differential entropies and has no such ceiling.

Everything goes through Pyro (:func:`information_terms`): the model is traced on a placeholder batch, so its codes c
come from p(c) and x = G(z, c) is the observed site's point mass; the guide Q is run on those x under
``poutine.condition`` on the model's sampled values, and every guide site the model also samples is a code, scored
by log Q(c | x); H(c) is the entropy of the model's own distribution at that site (a Monte Carlo -log p(c) where the
distribution has no closed form). So any Pyro generator and any guide that names some of its latents can be trained
this way, not only ``--model infogan`` with ``--guide infogan``.

``infogan`` / ``infogan:LAMBDA``: the critic's step is gan-ns's (D(x) = sigmoid(V(x)), the 2 JSD - log 4 bound); the
generator's step minimises -E log D(G(z, c)) - LAMBDA (L_I[categorical codes] + 0.1 L_I[continuous codes]) over the
generator's and Q's parameters (both stepped by the generator's optimizer). LAMBDA = 1 by default: the paper's lambda =
1 for discrete codes, and the smaller weight for continuous codes that the paper asks for ("a smaller lambda is
typically used ... since L_I then involves differential entropy", Section 7) is 0.1, the value most
reimplementations use. ``infogan:0`` is gan-ns (tested: the same generator loss). The optimizers are the paper's
(appendix): Adam with beta1 = 0.5, lr 1e-3 for the generator and Q, 2e-4 for the critic (``--lr``, ``--critic-lr``).

The divergence estimate of the run (``train_loss``, ``valid_loss``, what picks ``best.pt``) is the value of the
InfoGAN game, 2 JSD estimate - LAMBDA (L_I[cat] + 0.1 L_I[cont]): lower is better for the generator. Per epoch,
metrics.jsonl also gets ``mi_bound`` (L_I of the categorical code, in nats, with ``code_entropy`` = H(c) = log K beside
it), ``mi_bound_continuous`` and ``valid_code_accuracy`` -- the best one-to-one matching accuracy of argmax Q(c | x)
against the validation labels, recorded to be seen, never used to pick a checkpoint -- on a fixed draw of 1000 samples
(the training noise stream is left untouched). The evaluation adds ``code_accuracy`` on the test split to eval.json.
"""
import math
from typing import Dict, NamedTuple

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

from inference.adversarial import GAN_DEFAULTS, NonSaturatingGAN, check_can_sample
from inference.objectives import OBJECTIVES
from zoo.errors import ConfigError

#: the weight of continuous codes relative to LAMBDA (Chen et al. 2016, Section 7: smaller for differential entropies)
CONTINUOUS_WEIGHT = 0.1
#: samples of the per-epoch MI estimate, drawn with a fixed seed
EPOCH_SAMPLES = 1000
EPOCH_SEED = 20160612


class CodeTerm(NamedTuple):
    log_q: torch.Tensor      # log Q(c | x) per sample, shape (n,)
    entropy: torch.Tensor    # H(c) per sample (closed form where the distribution has one), shape (n,)
    discrete: bool

    def bound(self) -> torch.Tensor:
        """L_I of this code: E[log Q(c | x)] + H(c)."""
        return self.log_q.mean() + self.entropy.mean()


def _latent(site) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)


def information_terms(model, guide, n: int, like: torch.Tensor):
    """n samples x = G(z, c) of the model and, for every code (a latent the guide also samples), log Q(c | x) and H(c):
    ({site: CodeTerm}, x), differentiable in the model's and the guide's parameters."""
    placeholder = like.new_zeros(n, model.data_dim)
    model_trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(placeholder)
    x = model_trace.nodes["x"]["fn"].rsample()
    values = {name: site["value"] for name, site in model_trace.nodes.items() if _latent(site)}
    guide_trace = poutine.trace(poutine.block(poutine.condition(guide, data=values),
                                              hide_types=["param"])).get_trace(x)
    terms = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name not in values:
            continue
        prior = model_trace.nodes[name]["fn"]
        value = values[name]
        try:
            entropy = prior.entropy()
        except NotImplementedError:
            entropy = -prior.log_prob(value)
        log_q = site["fn"].log_prob(value)
        entropy = torch.broadcast_to(entropy.detach(), log_q.shape)
        terms[name] = CodeTerm(log_q, entropy, bool(prior.support.is_discrete))
    return terms, x


def hungarian_accuracy(codes: np.ndarray, labels: np.ndarray, num_codes: int, num_labels: int = None):
    """Best one-to-one matching of codes to labels: (accuracy, matching {code: label}, confusion counts)."""
    from scipy.optimize import linear_sum_assignment

    codes, labels = np.asarray(codes, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    num_labels = int(num_labels or (labels.max() + 1 if labels.size else 1))
    confusion = np.zeros((num_codes, num_labels), dtype=np.int64)
    np.add.at(confusion, (codes, labels), 1)
    rows, cols = linear_sum_assignment(-confusion)
    matching = {int(r): int(c) for r, c in zip(rows, cols)}
    return float(confusion[rows, cols].sum()) / max(len(codes), 1), matching, confusion


def matched_accuracy(codes, labels, matching: Dict[int, int]) -> float:
    """Accuracy of the codes under a given matching (codes without a partner count as errors)."""
    mapped = np.array([matching.get(int(c), -1) for c in np.asarray(codes)])
    return float((mapped == np.asarray(labels)).mean()) if len(mapped) else math.nan


@torch.no_grad()
def assigned_codes(guide, x: torch.Tensor, site: str, batch_size: int = 500) -> np.ndarray:
    """argmax_c Q(c | x) for every row of x, read from the guide's Pyro trace (its distribution at ``site``)."""
    out = []
    for start in range(0, x.shape[0], batch_size):
        trace = poutine.trace(poutine.block(guide, hide_types=["param"])).get_trace(x[start:start + batch_size])
        fn = trace.nodes[site]["fn"]
        out.append(fn.logits.argmax(-1) if hasattr(fn, "logits") else fn.probs.argmax(-1))
    return torch.cat(out).cpu().numpy()


def _categorical_site(model, guide):
    return getattr(guide, "categorical_site", None) or getattr(model, "categorical_site", None)


def _num_codes(model, guide):
    return int(getattr(guide, "categorical", None) or getattr(model, "categorical"))


#: Chen et al. 2016, appendix: Adam, lr 2e-4 for D and 1e-3 for G (and Q), beta1 0.5; one D step per G step
INFOGAN_DEFAULTS = dict(GAN_DEFAULTS, samples_only=False, lr=1e-3, critic_lr=2e-4)


@OBJECTIVES.register("infogan", arg="LAMBDA", text_arg=True, optional_arg=True,
                     paper="Chen et al. 2016 (InfoGAN)",
                     summary="gan-ns minus LAMBDA times the mutual-information lower bound L_I = E log Q(c|x) + H(c) "
                             "(categorical codes weigh LAMBDA, continuous 0.1 LAMBDA; LAMBDA = 1 unless given)",
                     **INFOGAN_DEFAULTS)
class InfoGANObjective(NonSaturatingGAN):
    """gan-ns's critic; the generator and Q minimise -log D(G(z, c)) - LAMBDA L_I; see the module docstring."""

    lr, critic_lr = INFOGAN_DEFAULTS["lr"], INFOGAN_DEFAULTS["critic_lr"]

    def __init__(self, weight=1.0):
        super().__init__()
        try:
            self.weight = float(weight)
        except (TypeError, ValueError):
            self.weight = math.nan
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"infogan:{weight}: the information term's weight LAMBDA must be a number >= 0 "
                              f"(Chen et al. use 1, the default of plain infogan)")
        self.name = "infogan" if self.weight == 1.0 else f"infogan:{weight}"

    # ------------------------------------------------------------------------------------------- L_I
    def information(self, terms: Dict[str, CodeTerm]) -> torch.Tensor:
        """sum over codes of w_code L_I[code]: w = 1 for discrete codes, 0.1 for continuous ones (times LAMBDA
        outside)."""
        total = 0.0
        for term in terms.values():
            total = total + (1.0 if term.discrete else CONTINUOUS_WEIGHT) * term.bound()
        return total

    def check(self, model, guide, like: torch.Tensor):
        check_can_sample(model, self, like)
        name = getattr(model, "display_name", lambda: type(model).__name__)()
        states = [m.training for m in (model, guide)]
        model.eval()
        guide.eval()
        try:
            with torch.no_grad():
                terms, _ = information_terms(model, guide, 2, like)
        finally:
            model.train(states[0])
            guide.train(states[1])
        if not terms:
            gname = getattr(guide, "_name", type(guide).__name__)
            raise ConfigError(f"objective {self.spec()} maximises the information between model {name}'s codes and "
                              f"x through an auxiliary Q(c|x), but guide {gname} samples none of the model's latents; "
                              f"use --model infogan with --guide infogan (or a guide that samples the codes)")

    # --------------------------------------------------------------------------------------- the steps
    def critic_step(self, model, guide, critic, x):
        """gan-ns's critic loss; the estimate is the game's value 2 JSD - log 4 + log 4 - LAMBDA L_I on these
        samples (Q scored without gradients)."""
        with torch.no_grad():
            terms, fake = information_terms(model, guide, x.shape[0], x)
        loss, estimate = self.critic_terms(critic, x, fake)
        return loss, (estimate - self.weight * self.information(terms)).detach()

    def generator_step(self, model, guide, critic, x):
        terms, fake = information_terms(model, guide, x.shape[0], x)
        loss = self.generator_loss(critic(fake))
        if self.weight:
            loss = loss - self.weight * self.information(terms)
        return loss

    @torch.no_grad()
    def validation_estimate(self, model, guide, critic, x):
        terms, fake = information_terms(model, guide, x.shape[0], x)
        return self.divergence_estimate(critic(x), critic(fake)) - self.weight * self.information(terms)

    def divergence_name(self):
        return f"2 JSD - {self.weight:g} L_I"

    # ------------------------------------------------------------------------------- what is recorded
    @torch.no_grad()
    def epoch_metrics(self, model, guide, data) -> dict:
        """mi_bound (the categorical code's L_I, nats), code_entropy (its H(c)), mi_bound_continuous, and the
        validation split's code accuracy, on a fixed draw that leaves the training's random stream untouched."""
        like = data.valid.x
        devices = [like.device] if like.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(EPOCH_SEED)
            terms, _ = information_terms(model, guide, EPOCH_SAMPLES, like)
        row = {}
        discrete = [t for t in terms.values() if t.discrete]
        continuous = [t for t in terms.values() if not t.discrete]
        if discrete:
            row["mi_bound"] = float(sum(t.bound() for t in discrete))
            row["code_entropy"] = float(sum(t.entropy.mean() for t in discrete))
        if continuous:
            row["mi_bound_continuous"] = float(sum(t.bound() for t in continuous))
        site = _categorical_site(model, guide)
        if site is not None and data.valid.y is not None and len(data.valid):
            codes = assigned_codes(guide, data.valid.x, site)
            row["valid_code_accuracy"] = hungarian_accuracy(codes, data.valid.y.cpu().numpy(),
                                                            _num_codes(model, guide))[0]
        return row

    @torch.no_grad()
    def evaluation_extras(self, model, guide, data, split) -> dict:
        """eval.json's ``code_accuracy`` on ``split`` (mean and binomial standard error), the matching, the confusion
        counts, and the accuracy under the matching fitted on the other split (no label of ``split`` used to match)."""
        site = _categorical_site(model, guide)
        points = getattr(data, split)
        if site is None or points.y is None:
            return {"code_accuracy_reason": "no categorical code or no labels"}
        K = _num_codes(model, guide)
        labels = points.y.cpu().numpy()
        num_labels = max(int(data.num_classes or 0), int(labels.max()) + 1)
        codes = assigned_codes(guide, points.x, site)
        accuracy, matching, confusion = hungarian_accuracy(codes, labels, K, num_labels)
        n = len(labels)
        out = {"code_accuracy": {"mean": accuracy, "se": math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(n, 1))},
               "code_matching": {str(k): v for k, v in sorted(matching.items())},
               "code_confusion": confusion.tolist(),
               "code_usage": np.bincount(codes, minlength=K).tolist()}
        other = getattr(data, "valid" if split == "test" else "test")
        if other.y is not None and len(other):
            _, other_matching, _ = hungarian_accuracy(assigned_codes(guide, other.x, site), other.y.cpu().numpy(),
                                                      K, num_labels)
            out["code_accuracy_other_matching"] = matched_accuracy(codes, labels, other_matching)
        out["code_protocol"] = (f"argmax_c Q(c|x) on the {split} split ({n} points) against its labels, codes matched "
                                f"one-to-one to labels by the Hungarian algorithm on the {split} labels "
                                "(code_accuracy_other_matching: the matching fitted on the other split)")
        return out
