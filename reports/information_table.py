"""The report's table of the ELBO's information decomposition: one row per run, from eval.json's ``information``
(:mod:`inference.information`), or the reason it is absent (``information_reason``)."""
import math
from typing import List

import pandas as pd

from zoo.references import short_name

CAPTION = [
    "The KL term of the ELBO split as Hoffman & Johnson 2016 ('ELBO surgery') and Chen et al. 2018 (beta-TCVAE) do: "
    "E_n KL(q(z|x_n) || p(z)) = I_q(x; z) + KL(q(z) || p(z)), the index-code mutual information plus the KL of the "
    "aggregate posterior q(z) = (1/N) sum_n q(z|x_n) from the prior; and, for a prior that factorises, "
    "KL(q(z) || p(z)) = total correlation + sum_j KL(q(z_j) || p(z_j)).",
    "Estimators: K draws z ~ q(z|x_n) per test point; log q(z) by the exact mixture over all N points "
    "(N x N x K evaluations); mean over draws ± standard error over points. I_q can never exceed log N (shown), so a "
    "value near log N says the encoder tells the points apart, not how much it knows beyond that. TC and dimension-wise "
    "KL need per-dimension densities (a diagonal Gaussian guide, one latent site, a factorised prior); otherwise the "
    "row says why they are absent. The KL term here is from these K draws, so it differs from the runs table's by "
    "Monte Carlo error.",
]

COLUMNS = ("KL term", "I_q(x;z)", "log N", "marginal KL", "total correlation", "dim-wise KL")


def _pm(v, digits=3) -> str:
    if not isinstance(v, dict) or v.get("mean") is None:
        return "-"
    se = v.get("se")
    return (f"{v['mean']:.{digits}f}" if se is None or not math.isfinite(se)
            else f"{v['mean']:.{digits}f} ± {se:.{digits}f}")


def information_table(sections) -> pd.DataFrame:
    """One row per run that has an evaluation with ``information`` or ``information_reason``; empty when none has
    (runs evaluated before the decomposition existed are listed only beside others that have it)."""
    have = [s for s in sections if isinstance(s.summary.get("information"), dict) or s.summary.get("information_reason")]
    if not have:
        return pd.DataFrame()
    rows: List[dict] = []
    for s in sections:
        summary, config = s.summary, s.config
        beta = (config.get("train") or {}).get("beta", 1.0)
        row = {"run": s.name, "model": short_name(str((config.get("model") or {}).get("name"))),
               "guide": short_name(str(config.get("guide"))),
               "objective": f"{config.get('objective')}" + (f" (beta={beta:g})" if beta not in (None, 1.0) else "")}
        info = summary.get("information")
        if isinstance(info, dict):
            row["N × K"] = f"{info['points']} × {info['samples_per_point']}"
            row.update({"KL term": _pm(info.get("kl")), "I_q(x;z)": _pm(info.get("mutual_information")),
                        "log N": f"{info['max_mutual_information']:.3f}", "marginal KL": _pm(info.get("marginal_kl"))})
            if isinstance(info.get("total_correlation"), dict):
                row.update({"total correlation": _pm(info["total_correlation"]),
                            "dim-wise KL": _pm(info.get("dimensionwise_kl"))})
            else:
                row.update({"total correlation": f"none: {info.get('dimensionwise_reason')}", "dim-wise KL": "-"})
            row["seconds"] = f"{info.get('seconds', float('nan')):.1f}"
        else:
            why = summary.get("information_reason") or ("not computed (evaluated before the information "
                                                        "decomposition; `zoo report --reevaluate` computes it)")
            row.update({"N × K": "-", **{c: "-" for c in COLUMNS}, "seconds": "-"})
            row["I_q(x;z)"] = f"none: {why}"
        rows.append(row)
    return pd.DataFrame(rows)
