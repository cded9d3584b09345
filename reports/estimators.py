"""How far each run's log-likelihood can be trusted: the estimators side by side, a K-sweep figure, and a sentence.

For every run with a likelihood, eval.json holds the importance-sampled NLL at K (the table's headline), the same
estimate from the first k of those K weights (``k_sweep``: k = 1, 10, 100, 1000, 5000), the first-order jackknife
(Nowozin 2018, ``nll_jackknife``: bias O(1/K^2), not a bound), the PSIS k-hat distribution, and, when
``zoo evaluate --estimator ais:T [--bdmc N]`` ran, annealed importance sampling (Neal 2001; Wu et al. 2017) and
bidirectional Monte Carlo on simulated data (Grosse et al. 2015). This module sets them in one table
(:func:`estimators_table`), draws the sweep (:func:`k_sweep_figure`) and says in plain words what they mean for the
run (:func:`reading`): an estimate that still moves with K, or whose weights have k-hat above 0.7, has not converged;
the BDMC gap bounds how far AIS with that T can be off on data from the model.
"""
import math
from typing import List, Optional

import numpy as np
import pandas as pd


def _ms(v) -> Optional[tuple]:
    return (v["mean"], v["se"]) if isinstance(v, dict) and v.get("mean") is not None else None


def _pm(v, digits=2) -> str:
    v = _ms(v)
    if v is None:
        return "-"
    mean, se = v
    return f"{mean:.{digits}f}" if se is None or not math.isfinite(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


def has_estimates(summary: dict) -> bool:
    """A run whose NLL is an estimate (latent variables, a density): implicit generators have an estimate only
    through AIS with a Gaussian observation model; models without latents have an exact NLL."""
    proto = summary.get("protocol") or {}
    if str(proto.get("estimator", "")).startswith("exact"):
        return False
    return _ms(summary.get("nll")) is not None or isinstance(summary.get("ais"), dict)


def reading(summary: dict) -> str:
    """What the estimators say about the run's NLL, in sentences a reader can act on."""
    proto = summary.get("protocol") or {}
    K = proto.get("num_samples")
    parts = []
    nll = _ms(summary.get("nll"))
    psis = summary.get("psis") or {}
    share, median = psis.get("share_khat_above_0.7"), psis.get("median_khat")
    if nll is not None and share is not None:
        if share > 0.5:
            parts.append(f"PSIS k-hat is above 0.7 for {100 * share:.0f}% of test points (median {median:.2f}): the "
                         f"importance weights are heavy-tailed, so the K={K} estimate has not converged and its NLL is "
                         "too high by an unknown amount.")
        elif share > 0.05:
            parts.append(f"k-hat is above 0.7 for {100 * share:.0f}% of test points (median {median:.2f}): the "
                         "estimate is unreliable for those points.")
        else:
            parts.append(f"k-hat is below 0.7 for {100 * (1 - share):.0f}% of test points (median {median:.2f}): "
                         f"the K={K} importance-sampled estimate is reliable.")
    sweep = summary.get("k_sweep") or []
    if nll is not None and len(sweep) >= 2:
        (a, b) = sweep[-2], sweep[-1]
        drop = a["nll"]["mean"] - b["nll"]["mean"]
        if drop > 0.1:
            parts.append(f"From K={a['K']} to K={b['K']} the NLL still falls by {drop:.2f} nats, so it would fall "
                         "further with more samples.")
        else:
            parts.append(f"From K={a['K']} to K={b['K']} the NLL changes by {b['nll']['mean'] - a['nll']['mean']:+.2f} nats: it has nearly "
                         "settled.")
    jk = _ms(summary.get("nll_jackknife"))
    if nll is not None and jk is not None:
        parts.append(f"The jackknife estimate from the same weights (bias O(1/K^2), not a bound) is {jk[0]:.2f}, "
                     f"{nll[0] - jk[0]:.2f} nats below the IS figure.")
    ais = summary.get("ais") if isinstance(summary.get("ais"), dict) else None
    if ais is not None:
        a = _ms(ais.get("nll"))
        obs = ais.get("observation_sigma")
        what = f"AIS (T={ais['steps']}, {ais['chains']} chains" + (
            f", Gaussian observation noise sigma={obs:g}" if obs is not None else "") + ")"
        if nll is not None:
            parts.append(f"{what} gives {a[0]:.2f} ± {a[1]:.2f}, {nll[0] - a[0]:+.2f} nats from the IS figure "
                         f"({'IS was too pessimistic by that much' if nll[0] > a[0] else 'IS is at least as tight'}).")
        else:
            parts.append(f"{what} gives NLL {a[0]:.2f} ± {a[1]:.2f} for the model with that observation noise "
                         "(the generator alone has no density).")
        b = ais.get("bdmc")
        if isinstance(b, dict):
            g = _ms(b.get("gap"))
            parts.append(f"On {b['points']} points simulated from the model, forward and reverse AIS differ by "
                         f"{g[0]:.2f} ± {g[1]:.2f} nats: AIS with this T can be off by about that much for this model.")
    return " ".join(parts)


def _sweep_text(summary: dict) -> str:
    sweep = summary.get("k_sweep") or []
    return " · ".join(f"{s['K']}: {s['nll']['mean']:.2f}" for s in sweep) or "-"


def _seconds(summary: dict) -> str:
    out = []
    if summary.get("seconds") is not None and _ms(summary.get("nll")) is not None:
        out.append(f"IS {summary['seconds']:.1f}")
    ais = summary.get("ais") if isinstance(summary.get("ais"), dict) else None
    if ais is not None:
        out.append(f"AIS {ais.get('seconds', float('nan')):.1f}")
        b = ais.get("bdmc")
        if isinstance(b, dict) and b.get("seconds") is not None:
            out.append(f"BDMC {b['seconds']:.1f}")
    return ", ".join(out) or "-"


def estimators_table(sections) -> pd.DataFrame:
    """One row per run whose NLL is an estimate: IS at K, its K-sweep, the jackknife, AIS and the BDMC gap, the
    k-hat summary and the seconds each took (the reading of each row: :func:`readings`)."""
    rows = []
    for s in sections:
        summary = s.summary
        if not has_estimates(summary):
            continue
        proto = summary.get("protocol") or {}
        ais = summary.get("ais") if isinstance(summary.get("ais"), dict) else None
        bdmc = (ais or {}).get("bdmc") if isinstance((ais or {}).get("bdmc"), dict) else None
        psis = summary.get("psis") or {}
        share = psis.get("share_khat_above_0.7")
        rows.append({
            "run": s.name,
            "NLL, IS": _pm(summary.get("nll")) + (f" (K={proto.get('num_samples')})"
                                                   if _ms(summary.get("nll")) else ""),
            "IS at K = 1 · 10 · 100 · ...": _sweep_text(summary),
            "jackknife": _pm(summary.get("nll_jackknife")),
            "AIS": "-" if ais is None else f"{_pm(ais.get('nll'))} (T={ais['steps']}, {ais['chains']} chains, "
                                           f"accept {ais.get('acceptance', float('nan')):.2f})",
            "BDMC gap (simulated)": "-" if bdmc is None else f"{_pm(bdmc.get('gap'))} on {bdmc['points']} points "
                                                              f"(bounds {_pm(bdmc.get('lower'))} / "
                                                              f"{_pm(bdmc.get('upper'))} log p)",
            "k-hat > 0.7 (median)": "-" if share is None else f"{100 * share:.0f}% ({psis.get('median_khat'):.2f})",
            "seconds": _seconds(summary),
        })
    return pd.DataFrame(rows)


def readings(sections) -> List[str]:
    """The sentence of :func:`reading` for each run of the estimators table, as ``run: sentence``."""
    return [f"{s.name}: {reading(s.summary)}" for s in sections if has_estimates(s.summary) and reading(s.summary)]


CAPTION = [
    "How far each NLL can be trusted. NLL, IS: the table's headline, -log of the mean of K importance weights from "
    "the guide (a stochastic upper bound on the NLL). IS at K: the same estimate from the first K of those weights: "
    "if it still falls at the largest K, more samples would lower it further. Jackknife: Nowozin (2018)'s "
    "first-order bias correction from the same weights (bias O(1/K^2); not a bound). AIS: annealed importance "
    "sampling (Neal 2001; Wu et al. 2017), `zoo evaluate --estimator ais:T`; BDMC gap: reverse minus forward AIS "
    "on points simulated from the model (Grosse et al. 2015), `--bdmc N`: how far AIS with that T can be off. "
    "k-hat: PSIS Pareto shape of each point's weights; above 0.7 the IS estimate is unreliable (Vehtari et al.).",
]


def k_sweep_figure(summary: dict, path: str) -> Optional[str]:
    """NLL against K (log axis) from the same weights, with the jackknife at the largest K and AIS (with its BDMC
    bracket on simulated data, when present) as a horizontal band; None when the run has no sweep."""
    sweep = summary.get("k_sweep") or []
    if len(sweep) < 2:
        return None
    from reports.figures import _figure, _save

    fig = _figure(5.2, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    ks = np.array([s["K"] for s in sweep], dtype=float)
    m = np.array([s["nll"]["mean"] for s in sweep])
    se = np.array([s["nll"]["se"] for s in sweep])
    ax.errorbar(ks, m, yerr=se, marker="o", color="#1f77b4", capsize=3, label="IS, first K weights")
    jk = _ms(summary.get("nll_jackknife"))
    if jk is not None:
        ax.errorbar([ks[-1] * 1.25], [jk[0]], yerr=[jk[1]], marker="s", color="#2ca02c", capsize=3, linestyle="none",
                    label=f"jackknife (K={int(ks[-1])})")
    ais = summary.get("ais") if isinstance(summary.get("ais"), dict) else None
    if ais is not None and _ms(ais.get("nll")) is not None:
        a, a_se = _ms(ais["nll"])
        ax.axhline(a, color="#d62728", linestyle="--", label=f"AIS (T={ais['steps']})")
        ax.axhspan(a - a_se, a + a_se, color="#d62728", alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("K (importance samples per point)")
    ax.set_ylabel("NLL (nats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
