"""CLI wiring of the semi-supervised models (M1, M2, M1+M2): default guide/objective, compatibility errors, the labelled
subset (``--labels N``), M1+M2's ``--m1-run``, M1's post-training classifier and the test error in eval.json.

``zoo/cli/runs.py`` calls :func:`prepare_config` before it builds a run's components, :func:`prepare_components` after,
:func:`after_training` when training ends and :func:`add_evaluation` in the evaluation; each is a no-op for a
model that declares no labels.
"""
import math
import os

import torch

from zoo.errors import ConfigError


def model_default(model_name: str, kind: str, fallback: str) -> str:
    """The guide (``kind="guide"``) or objective a model trains with when none is named (m2: semi-supervised, enum)."""
    from zoo.cli.assemble import register_all
    from zoo.model import MODELS

    register_all()
    return MODELS.entry(model_name).meta.get(kind, fallback)


def check_pair(config: dict):
    """One clear line when a model with a discrete latent meets a guide or an objective that cannot handle it."""
    from guides.base import GUIDES
    from inference.objectives import OBJECTIVES
    from zoo.cli.assemble import register_all
    from zoo.model import MODELS

    register_all()
    name = config["model"]["name"]
    meta = MODELS.entry(name).meta
    if not meta.get("discrete_latents"):
        return
    objective, guide = config["objective"], config["guide"]
    if not OBJECTIVES.entry(objective).meta.get("enumerates"):
        ok = ", ".join(e.name + (":K" if e.arg else "") for e in OBJECTIVES if e.meta.get("enumerates"))
        raise ConfigError(f"model {name} has a discrete latent y (the label) that must be summed out by enumeration; "
                          f"objective {objective!r} cannot do that: use --objective {meta.get('objective', 'enum')} "
                          f"(objectives that enumerate: {ok})")
    if not GUIDES.entry(guide).meta.get("discrete"):
        ok = ", ".join(e.name for e in GUIDES if e.meta.get("discrete"))
        raise ConfigError(f"model {name} has a discrete latent y (the label); guide {guide!r} has no q(y|x): use "
                          f"--guide {meta.get('guide', ok)}")


def prepare_config(config: dict):
    """Before the components are built: check the model/guide/objective pair and, for M1+M2, read M1's architecture
    from ``--m1-run``'s config.json into the model options."""
    check_pair(config)
    if config["model"]["name"] != "m1+m2":
        return config
    from inference import run_dir as rd

    opts = config["model"].setdefault("options", {})
    m1_run = opts.get("m1_run")
    if not m1_run:
        raise ConfigError("model m1+m2 needs --m1-run DIR, a trained M1 on the same data "
                          "(e.g. `zoo train --model m1 --labels 100 --out DIR`)")
    m1 = rd.read_config(m1_run)
    if m1["model"]["name"] not in ("m1", "vae") or m1["guide"] != "diagonal":
        raise ConfigError(f"--m1-run {m1_run}: that run trains {m1['model']['name']} with guide {m1['guide']}; "
                          "M1+M2 needs an m1 (or vae) run with the diagonal guide")
    if m1["data"]["name"] != config["data"]["name"]:
        raise ConfigError(f"--m1-run {m1_run} was trained on {m1['data']['name']!r}, not {config['data']['name']!r}")
    o = m1["model"]["options"]
    opts.update({"m1_latent_dim": o.get("latent_dim", 20), "m1_hidden": list(o.get("hidden", [400])),
                 "m1_activation": o.get("activation", "relu"), "m1_likelihood": o.get("likelihood", "bernoulli"),
                 "m1_sigma": o.get("sigma", 0.1), "m1_run": os.path.abspath(m1_run)})
    return config


def prepare_components(config: dict, comps, resume: bool = False):
    """After the components are built: hide all but ``--labels N`` training labels; copy M1 into M1+M2."""
    n = config["data"].get("labels")
    uses_labels = getattr(comps.model, "uses_labels", False)
    name = config["model"]["name"]
    if n and not (uses_labels or getattr(comps.model, "accepts_labels", False)):
        raise ConfigError(f"model {name!r} makes no use of labels, so --labels {n} would change nothing; drop it "
                          f"(models that learn from labels: m1, m2, m1+m2, or a model(x, y=None) of your own)")
    if uses_labels and not resume and comps.data.train.y is None:
        raise ConfigError(f"model {name!r} learns from labels, but data set {config['data']['name']!r} has none; "
                          f"give it labelled data (an .npz with a 'y' array) or train a model without labels (vae)")
    if n:
        from zoo.data.labels import mask_labels

        comps.data = mask_labels(comps.data, int(n), seed=int(config["train"]["seed"]),
                                 repeat=config["data"].get("label_repeat", 1))
    if uses_labels and hasattr(comps.model, "set_label_counts") and comps.data.train.y is not None:
        comps.model.set_label_counts(*label_counts(comps.data))
    if config["model"]["name"] == "m1+m2" and not resume:
        from zoo.cli.assemble import load_run

        m1 = load_run(config["model"]["options"]["m1_run"], comps.device)
        comps.model.load_m1(m1.model, m1.guide)
    return comps


def label_counts(data):
    """(N distinct training points, L labelled among them, r copies of each labelled point) of a training split."""
    info = data.info.get("labels")
    if info:
        return info["labelled"] + info["unlabelled"], info["labelled"], info["copies_of_each_labelled_point"]
    y = data.train.y
    return len(y), max(int((y >= 0).sum()), 1), 1


def after_training(comps, run_dir: str):
    """Models with a second stage (M1's classifier) run it on the best weights and store it in best.pt."""
    fit = getattr(comps.model, "after_training", None)
    if fit is None:
        return None
    from inference import checkpoint as ckpt
    from inference import run_dir as rd

    path = rd.path(run_dir, rd.BEST)
    state = ckpt.load(path, map_location=comps.device)
    comps.model.load_state_dict(state["model"])
    comps.guide.load_state_dict(state["guide"])
    info = fit(comps.guide, comps.data)
    state["model"] = comps.model.state_dict()
    ckpt.save_atomic(state, path)
    return info


@torch.no_grad()
def classification_metrics(comps, split, batch_size: int = 500) -> dict:
    """``test_error`` (with its standard error): the share of points whose argmax q(y|x) is not their label."""
    predict = getattr(comps.model, "predict_logits", None)
    if predict is None or split.y is None:
        return {}
    comps.guide.eval()
    wrong = []
    for start in range(0, len(split), batch_size):
        xb, yb = split.x[start:start + batch_size], split.y[start:start + batch_size]
        wrong.append((predict(xb, comps.guide).argmax(-1) != yb).double().cpu())
    wrong = torch.cat(wrong).numpy()
    n = wrong.shape[0]
    return {"test_error": {"mean": float(wrong.mean()), "se": float(wrong.std(ddof=1) / math.sqrt(n)) if n > 1
                           else float("nan")},
            "classification": {"points": int(n), "rule": "argmax of the model's classifier (q(y|x) for M2)"}}


def model_selection(comps) -> str:
    """How the evaluated checkpoint (best.pt) was chosen, in words, for eval.json: the training loop keeps the epoch
    with the lowest validation loss; with ``--labels N`` the validation labels are hidden, so that loss is the
    unlabelled bound and no label outside the N training labels picks the checkpoint."""
    n = comps.config.get("data", {}).get("labels")
    if n:
        return (f"epoch of the lowest validation loss = -ELBO of the validation points with their labels hidden (the "
                f"unlabelled bound, y summed out): no label beyond the {n} training labels is used; the test error "
                f"of every epoch is in metrics.jsonl (recorded, not used)")
    return ("epoch of the lowest validation loss (the data set's validation labels are known: labelled bound plus "
            "the alpha classification term)")


def add_evaluation(summary: dict, comps, split):
    """Complete eval.json: the classifier's test error, and the estimator of log p(x) of models whose categorical
    latent is summed out (``inference.enumeration.enumerated_weight_terms``)."""
    from inference.enumeration import has_enumerated_latents

    summary.update(classification_metrics(comps, split))
    if "test_error" in summary and getattr(comps.model, "uses_labels", False):
        summary["protocol"]["model_selection"] = model_selection(comps)
    if has_enumerated_latents(comps.model):
        summary["protocol"]["estimator"] = ("logsumexp_k log sum_y w_ky - log K, w_ky = p(x, y, z_ky) / q(z_ky | x, y), "
                                            "z_ky ~ q(z | x, y): y summed out exactly (labels unused)")
        summary["protocol"]["elbo"] = "sum_y q(y|x) E_q(z|x,y)[log p(x, y, z) - log q(y, z | x)] (the enum objective)"
    if getattr(comps.model, "observes_features", False):  # M1+M2: the likelihood is over M1's features, not pixels
        summary.pop("bits_per_dim", None)
        summary["protocol"]["observed"] = ("M1's posterior means (features): NLL, ELBO and KL are in nats of the "
                                           "feature space, not comparable with pixel-space models")
    return summary
