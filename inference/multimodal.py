"""The multimodal VAE's sub-sampled training objective and its evaluation (zoo/multimodal.py, guides/multimodal.py).

Objective ``mvae-subsampled`` (Wu & Goodman 2018, section 3): for M = 2 modalities

    L(x_1, x_2) = ELBO(x_1, x_2) + ELBO(x_1) + ELBO(x_2),

each term the zoo's ``elbo`` objective (guide traced, model replayed: Pyro's ELBO, analytic KL where registered) run on
the batch with the modalities outside the term's subset masked out -- set to NaN, the data contract's "missing"
(:func:`zoo.multimodal.keep_only`), so the guide conditions on the subset only (its product or mixture over the
present experts) and the model scores the subset only. A point missing a modality enters only the terms its present
modalities make: its joint term is dropped when fewer than two modalities are present (it would repeat a unimodal
term), and a unimodal term of a missing modality is empty. A point with nothing to score is given no modality at all,
so it contributes exactly 0 (the guide is then the prior: KL(p || p) = 0). For M > 2 the terms are the joint and the
M unimodal ELBOs (the paper's extra random subsets are left out).

Evaluation (:func:`multimodal_evaluation`, added to eval.json as ``multimodal`` by ``zoo evaluate``):

* the joint log p(x_1, .., x_M) is the protocol's importance-sampled estimate with q(z | all present modalities);
* each marginal log p(x_m): the same estimator on the rows with every other modality masked out, so the guide is
  q(z | x_m) and the model scores x_m alone (K samples, the same protocol);
* the conditional log p(x_rest | x_m) = log p(x) - log p(x_m): the difference of the two importance-sampled estimates
  (each a stochastic lower bound in expectation; their difference is consistent as K grows but has no sign guarantee
  at finite K). For M = 2 this gives log p(x_2 | x_1) and log p(x_1 | x_2).
Only points where the modalities involved are present enter each mean.
"""
import torch

from inference.objectives import ELBO, OBJECTIVES, Objective
from zoo.errors import ConfigError
from zoo.multimodal import keep_only, presence


def _modalities(model):
    mods = getattr(model, "modalities", None) if getattr(model, "is_multimodal_model", False) else None
    if not mods:
        name = getattr(model, "display_name", lambda: type(model).__name__)()
        raise ConfigError(f"objective mvae-subsampled sums ELBOs over subsets of modalities, so it is for multimodal "
                          f"models (mvae), not model {name}; use elbo")
    return mods


def subsampled_terms(model, x: torch.Tensor):
    """[(label, x masked to the term's subset)] of the sub-sampled objective for the rows x."""
    mods = _modalities(model)
    present = presence(x, mods)
    terms = [("joint", keep_only(x, mods, range(len(mods)), rows=present.sum(-1) >= 2))]
    terms += [(m.name, keep_only(x, mods, [i])) for i, m in enumerate(mods)]
    return terms


@OBJECTIVES.register("mvae-subsampled", paper="Wu & Goodman 2018 (MVAE sub-sampled training)",
                     summary="multimodal: -[ELBO(x1,..,xM) + sum_m ELBO(x_m)], each term the elbo objective on the "
                             "batch with the other modalities masked (mvae)")
class SubsampledELBO(Objective):
    name = "mvae-subsampled"

    def __init__(self):
        super().__init__()
        self.inner = ELBO()

    def loss(self, model, guide, x, y=None):
        self.inner.kl_weight = self.kl_weight
        total = None
        for _, xs in subsampled_terms(model, x):
            part = self.inner.loss(model, guide, xs, y)
            total = part if total is None else total + part
        return total


def multimodal_evaluation(model, guide, x: torch.Tensor, joint_log_px, num_samples: int, batch_size: int = 100,
                          precision: str = "fp32", progress=None) -> dict:
    """eval.json's ``multimodal`` part: each marginal's and each conditional's NLL (mean and standard error over the
    points where they are defined), from K importance samples per point; ``joint_log_px`` (N,) is the protocol's."""
    import numpy as np

    from inference.evaluation import importance_sample, mean_se

    mods = _modalities(model)
    present = presence(x, mods).cpu().numpy()
    joint = np.asarray(joint_log_px, dtype=np.float64)
    everything = present.all(-1)
    out = {"modalities": [m.name for m in mods], "marginal_nll": {}, "conditional_nll": {},
           "estimator": {"joint": "importance sampling with q(z | every present modality)",
                         "marginal": "importance sampling with the other modalities masked: q(z | x_m), p(x_m | z)",
                         "conditional": "log p(x_rest | x_m) = log p(x) - log p(x_m), the difference of the two "
                                        "importance-sampled estimates (same K)"},
           "num_samples": num_samples}
    per_point = {}
    for i, m in enumerate(mods):
        rows = torch.as_tensor(present[:, i], device=x.device)
        xm = keep_only(x, mods, [i], rows=rows)
        log_pm = importance_sample(model, guide, xm, None, num_samples, batch_size, precision=precision,
                                   progress=progress)["log_px"]
        per_point[m.name] = log_pm
        if present[:, i].any():
            out["marginal_nll"][m.name] = {**mean_se(-log_pm[present[:, i]]), "points": int(present[:, i].sum())}
        if everything.any() and len(mods) > 1:
            rest = "+".join(o.name for o in mods if o.name != m.name)
            cond = -(joint - log_pm)
            out["conditional_nll"][f"{rest}|{m.name}"] = {**mean_se(cond[everything]), "points": int(everything.sum())}
    return out, per_point
