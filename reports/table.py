"""The comparison table: one row per run, numbers straight from its ``eval.json``, ``config.json`` and
``metrics.jsonl`` (a pandas DataFrame), sorted by NLL; :func:`display_table` formats it for reading."""
import math
from typing import List

import pandas as pd

from reports import published
from zoo.references import short_name


def _mean(summary: dict, key: str):
    v = summary.get(key)
    return (v["mean"], v["se"]) if isinstance(v, dict) else (float("nan"), float("nan"))


def _data_name(config: dict) -> str:
    return str((config.get("data") or {}).get("name"))


def is_exact(summary: dict) -> bool:
    """True for models without latent variables, whose evaluation is the exact log-likelihood (K does not apply)."""
    return str((summary.get("protocol") or {}).get("estimator", "")).startswith("exact")


def _non_default(factory, options: dict) -> dict:
    """The options that differ from the defaults of ``factory``'s signature (all of them where it cannot be read)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(options)
    out = {}
    for k, v in options.items():
        p = params.get(k)
        default = None if p is None or p.default is inspect.Parameter.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        if p is None or v != default:
            out[k] = v
    return out


def options_label(config: dict) -> str:
    """Every model and guide option of a run that differs from its default, as ``model: k=v; guide: k=v``."""
    model = config.get("model") or {}
    options = {k: v for k, v in (model.get("options") or {}).items() if v is not None}
    try:
        from zoo.cli.assemble import register_all
        from zoo.model import MODELS

        register_all()
        options = _non_default(MODELS.entry(model.get("name")).factory, options)
    except Exception:  # noqa: BLE001 - a model whose code is gone: show every recorded option
        pass
    options.update(model.get("own_options") or {})
    fmt = lambda d: ", ".join(f"{k}={v}" for k, v in sorted(d.items()))  # noqa: E731
    parts = [f"model: {fmt(options)}"] if options else []
    if config.get("guide_options"):
        parts.append(f"guide: {fmt(config['guide_options'])}")
    return "; ".join(parts) or "-"


def run_record(name: str, config: dict, summary: dict, metrics: List[dict], match=None) -> dict:
    """The numbers of one run, as plain values (the DataFrame's row)."""
    options = (config.get("model") or {}).get("options") or {}
    proto = summary.get("protocol") or {}
    nll, nll_se = _mean(summary, "nll")
    neg_elbo, neg_elbo_se = _mean(summary, "neg_elbo")
    kl, kl_se = _mean(summary, "kl")
    recon, recon_se = _mean(summary, "recon")
    bpd, bpd_se = _mean(summary, "bits_per_dim")
    train = config.get("train") or {}
    epochs = summary.get("epochs_trained", len(metrics))
    seconds = summary.get("train_seconds")
    if seconds is None:
        seconds = sum(r.get("seconds", 0.0) for r in metrics)
    share = (summary.get("psis") or {}).get("share_khat_above_0.7")
    return {
        "run": name,
        "model": short_name(str((config.get("model") or {}).get("name"))),
        "guide": short_name(str(config.get("guide"))),
        "options": options_label(config),
        "prior": options.get("prior") or "-",
        "objective": config.get("objective") + (f" (beta={train['beta']:g})" if train.get("beta", 1.0) != 1.0 else ""),
        "data": _data_name(config),
        "binarize": (config.get("data") or {}).get("binarize") or proto.get("binarize"),
        "epochs": epochs,
        "best_epoch": None if summary.get("best_epoch") is None else summary["best_epoch"] + 1,
        "neg_elbo": neg_elbo, "neg_elbo_se": neg_elbo_se,
        "nll": nll, "nll_se": nll_se, "K": None if is_exact(summary) else proto.get("num_samples"),
        "exact": is_exact(summary),
        "test_error": _mean(summary, "test_error")[0], "test_error_se": _mean(summary, "test_error")[1],
        "kl": kl, "kl_se": kl_se,
        "neg_recon": -recon, "neg_recon_se": recon_se,
        "active_units": summary.get("active_units"), "latent_units": summary.get("latent_units"),
        "khat_above_0.7": share if share is not None else float("nan"),
        "bits_per_dim": bpd, "bits_per_dim_se": bpd_se,
        "train_seconds": float(seconds), "num_parameters": config.get("num_parameters"),
        "split": proto.get("split"), "num_points": proto.get("num_points"),
        "published": "; ".join(published.short_label(r) for r in match.rows) if match is not None and match.rows
        else "none matches",
    }


def build_table(records: List[dict]) -> pd.DataFrame:
    """The runs' records as a DataFrame sorted by NLL (best first)."""
    df = pd.DataFrame.from_records(records)
    if len(df):
        df = df.sort_values("nll", kind="stable", na_position="last").reset_index(drop=True)
    return df


def _pm(mean, se, digits=2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def _duration(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _ks(df: pd.DataFrame):
    return sorted({int(k) for k in df["K"].dropna()}) if len(df) else []


def nll_header(df: pd.DataFrame) -> str:
    ks = _ks(df)
    if not ks:
        return "NLL (exact)" if len(df) else "NLL"
    return f"NLL (K={ks[0]})" if len(ks) == 1 else "NLL (K per row)"


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table as people read it: mean ± se strings and readable headers."""
    uniform_k = len(_ks(df)) <= 1
    classifier = len(df) and df["test_error"].notna().any()
    rows = []
    for _, r in df.iterrows():
        row = {
            "run": r["run"], "model": r["model"], "guide": r["guide"], "options": r["options"], "prior": r["prior"],
            "objective": r["objective"], "data (binarization)": f"{r['data']} ({r['binarize']})",
            "epochs": f"{int(r['epochs'])}" + (f" (best {int(r['best_epoch'])})" if pd.notna(r["best_epoch"]) else ""),
            "test \u2212ELBO": _pm(r["neg_elbo"], r["neg_elbo_se"]),
            nll_header(df): _pm(r["nll"], r["nll_se"]) + (
                " (exact)" if r["exact"] and _ks(df) else "" if uniform_k or r["exact"] else f" (K={int(r['K'])})"),
            "KL": _pm(r["kl"], r["kl_se"]),
            "\u2212reconstruction": _pm(r["neg_recon"], r["neg_recon_se"]),
            "active units": "-" if pd.isna(r["active_units"]) else f"{int(r['active_units'])} of {int(r['latent_units'])}",
            "k-hat > 0.7": "-" if pd.isna(r["khat_above_0.7"]) else f"{100 * r['khat_above_0.7']:.1f}%",
            "bits/dim": _pm(r["bits_per_dim"], r["bits_per_dim_se"], 4),
            "training time": _duration(r["train_seconds"]),
            **({"test error": "-" if pd.isna(r["test_error"]) else
                f"{100 * r['test_error']:.2f}% ± {100 * r['test_error_se']:.2f}"} if classifier else {}),
            "parameters": "-" if pd.isna(r["num_parameters"]) else f"{int(r['num_parameters']):,}",
            "published (paper)": r["published"],
        }
        rows.append(row)
    return pd.DataFrame(rows)


def protocol_lines(df: pd.DataFrame) -> List[str]:
    """The evaluation protocol, stated once when the runs share it, per run where they differ."""
    if not len(df):
        return ["no runs"]
    keys = ["split", "num_points", "data", "binarize"]
    shared = {k: set(df[k].tolist()) for k in keys}
    ks = _ks(df)
    exact = df[df["exact"]]["run"].tolist()
    estimator = (f"NLL = importance-sampled -log p(x) with K={ks[0]} samples per point (logsumexp over k of log w_k, "
                 "minus log K)" if len(ks) == 1 else "NLL = importance-sampled -log p(x)" if ks else "")
    lines = []
    if all(len(v) == 1 for v in shared.values()) and len(ks) <= 1:
        r = df.iloc[0]
        lines.append(f"{r['split']} split of {r['data']} ({int(r['num_points'])} points), binarization "
                     f"{r['binarize']}" + (f"; {estimator}." if estimator else "."))
    else:
        differ = [k.replace("num_points", "number of test points") for k in keys if len(shared[k]) > 1]
        differ += ["K"] if len(ks) > 1 else []
        lines.append(f"The runs were NOT evaluated under one protocol (they differ in {', '.join(differ)}); "
                     "compare their rows with care:")
        for _, r in df.iterrows():
            lines.append(f"{r['run']}: {r['split']} split of {r['data']} ({int(r['num_points'])} points), binarization "
                         f"{r['binarize']}, " + ("exact log-likelihood" if r["exact"] else f"K={int(r['K'])}"))
    if exact:
        lines.append(f"Models without latent variables ({', '.join(exact)}): NLL is the exact -log p(x); K, KL, "
                     "k-hat and active units do not apply.")
    lines.append("Weights of the best validation epoch. -ELBO, KL(q||p) and the reconstruction term E_q[log p(x|z)] "
                 "are averages over the same K samples; every figure is a mean over test points ± its standard "
                 "error. k-hat: PSIS Pareto shape of each point's K log-weights (share of points above 0.7, where the "
                 "estimate is unreliable). Bits/dim = NLL / (D ln 2) where the data are pixels. Rows sorted by NLL.")
    return lines
