"""Curves of two-player (adversarial) runs: both players' losses, and the critic's divergence estimate.

An adversarial run records per epoch (:mod:`inference.adversarial_training`) the critic's loss and the generator's
loss (means over their steps), and as ``train_loss`` / ``valid_loss`` the critic's estimate of the divergence between
data and samples on the training batches and on the validation split. These are not nats per data point of a
likelihood, so they get their own figure instead of sharing an axis with the -ELBO of the likelihood runs.
"""
import math
from typing import Dict, List

from reports.figures import _figure, _save


def is_adversarial_run(rows: List[dict]) -> bool:
    return any("critic_loss" in r for r in rows)


def _points(rows, key):
    return [(r["epoch"] + 1, float(r[key])) for r in rows
            if r.get(key) is not None and math.isfinite(float(r[key]))]


def players_figure(runs: Dict[str, List[dict]], path: str) -> str:
    """Left: critic (solid) and generator (dashed) loss per epoch; right: the critic's divergence estimate on the
    training batches (solid) and on the validation split (dashed), per run. Returns the path, or None when no run is
    adversarial."""
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
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker="o", markersize=3,
                            label=f"{name} ({what})")
    left.set_title("players' losses: critic (solid), generator (dashed)")
    left.set_ylabel("loss (mean over the player's steps)")
    right.set_title("critic's divergence estimate: train (solid), valid (dashed)")
    right.set_ylabel("estimate (the objective's divergence)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path)
