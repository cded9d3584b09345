"""Curves of two-player (adversarial) runs: both players' losses, and what each objective records as its estimate.

An adversarial run records per epoch (:mod:`inference.adversarial_training`) the critic's loss and the generator's
loss (means over their steps), and as ``train_loss`` / ``valid_loss`` its objective's estimate on the training
batches and on the validation split: the critic's estimate of the divergence between data and samples for the GANs
(2 JSD, an f-divergence, W1), the generator's whole objective for the hybrids (AVB's -ELBO with T in place of
log q - log p, AAE's reconstruction + LAMBDA 2 JSD, Flow-GAN's NLL + LAMBDA W1, ...): the objective's
``divergence_name()`` says which, and labels the curves. These are not nats per data point of one likelihood, so they
get their own figure instead of sharing an axis with the -ELBO of the likelihood runs.
"""
import math
from typing import Dict, List

from reports.figures import _figure, _save


def is_adversarial_run(rows: List[dict]) -> bool:
    return any("critic_loss" in r for r in rows)


def _points(rows, key):
    return [(r["epoch"] + 1, float(r[key])) for r in rows
            if r.get(key) is not None and math.isfinite(float(r[key]))]


def estimate_label(config: dict) -> str:
    """What a two-player run's train_loss / valid_loss are: its objective's ``divergence_name()``, or a generic label
    when the objective cannot be built here (a user's objective that is not importable any more)."""
    try:
        from inference.objectives import build_objective
        from zoo.cli.assemble import register_all

        register_all()
        return build_objective(config["objective"]).divergence_name()
    except Exception:  # noqa: BLE001 -- a label, not a reason to fail the report
        return "the objective's estimate"


def players_figure(runs: Dict[str, List[dict]], path: str, labels: Dict[str, str] = None) -> str:
    """Left: critic (solid) and generator (dashed) loss per epoch; right: each run's recorded estimate (``labels``:
    what it is, by run) on the training batches (solid) and on the validation split (dashed). Returns the path, or
    None when no run is adversarial."""
    labels = labels or {}
    runs = {name: rows for name, rows in runs.items() if is_adversarial_run(rows)}
    if not runs:
        return None
    fig = _figure(10.0, 3.8)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (name, rows) in enumerate(runs.items()):
        color = f"C{i % 10}"
        for ax, keys in ((left, (("critic_loss", "-", "critic"), ("generator_loss", "--", "generator"))),
                         (right, (("train_loss", "-", "train"), ("valid_loss", "--", "valid")))):
            for key, style, what in keys:
                pts = _points(rows, key)
                if pts:
                    shown = what if ax is left or name not in labels else f"{labels[name]}, {what}"
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", markersize=3,
                            label=f"{name} ({shown})")
    left.set_title("players' losses: critic (solid), generator (dashed)")
    left.set_ylabel("loss (mean over the player's steps)")
    names = {labels.get(name) for name in runs}
    what = names.pop() if len(names) == 1 and None not in names else "each run's estimate (legend)"
    right.set_title("recorded estimate: train (solid), valid (dashed)")
    right.set_ylabel(what)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path)
