"""The report's table of the inference gap split (Cremer, Li & Duvenaud 2018): one row per run evaluated with
``zoo evaluate --inference-gap N``, from eval.json's ``inference_gap`` (:mod:`inference.inference_gap`). Runs without
it are left out (the split is opt-in: it costs an optimisation per point)."""
import math
from typing import List

import pandas as pd

from zoo.references import short_name

CAPTION = [
    "log p(x) - ELBO(amortized q) = approximation gap + amortization gap (Cremer, Li & Duvenaud 2018): a local q* of "
    "the guide's own family (its per-point parameters free, started at the encoder's output; or a full-covariance "
    "Gaussian) is fitted to each of the first N test points by Adam on its ELBO; approximation gap = log p(x) - "
    "ELBO(q*), the price of the family; amortization gap = ELBO(q*) - ELBO(q_amortized), the price of one encoder "
    "for all points. Mean ± standard error over the N points.",
    "log p(x) is the evaluation's AIS estimate where it ran, else the importance-sampled one: both are stochastic "
    "lower bounds, so the approximation gap is if anything underestimated (it can come out negative when the "
    "importance-sampled log p(x) has not converged; see the k-hat column). A q* short of its optimum moves nats from "
    "the amortization gap to the approximation gap.",
]


def _pm(v, digits=2) -> str:
    if not isinstance(v, dict) or not isinstance(v.get("mean"), (int, float)):
        return "-"
    se = v.get("se")
    return (f"{v['mean']:.{digits}f}" if not isinstance(se, (int, float)) or not math.isfinite(se)
            else f"{v['mean']:.{digits}f} ± {se:.{digits}f}")


def inference_gap_table(sections) -> pd.DataFrame:
    """One row per run whose eval.json has ``inference_gap``; empty when none has."""
    rows: List[dict] = []
    for s in sections:
        gap = s.summary.get("inference_gap")
        if not isinstance(gap, dict):
            continue
        config = s.config
        estimator = str(gap.get("log_px_estimator") or "")
        rows.append({
            "run": s.name, "model": short_name(str((config.get("model") or {}).get("name"))),
            "guide": short_name(str(config.get("guide"))), "local q": gap.get("family", "-"),
            "points × steps": f"{gap.get('points')} × {gap.get('steps')}",
            "log p(x)": _pm(gap.get("log_px")) + (" (AIS)" if estimator.startswith("AIS") else " (IS)"),
            "ELBO amortized": _pm(gap.get("elbo_amortized")), "ELBO local q*": _pm(gap.get("elbo_local")),
            "approximation gap": _pm(gap.get("approximation_gap")),
            "amortization gap": _pm(gap.get("amortization_gap")),
            "seconds": f"{gap.get('seconds', float('nan')):.1f}"})
    return pd.DataFrame(rows)
