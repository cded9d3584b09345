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


def is_implicit(summary: dict) -> bool:
    """True for an implicit generator (x = G(z)): no density, so no NLL, bound, KL or k-hat (eval.json's nll_reason)."""
    return summary.get("implicit") is True


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
    implicit = is_implicit(summary)
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
        "nll": nll, "nll_se": nll_se, "K": None if is_exact(summary) or implicit else proto.get("num_samples"),
        "exact": is_exact(summary), "implicit": implicit,
        "nll_reason": summary.get("nll_reason") or (IMPLICIT_REASON if implicit else None),
        "test_error": _mean(summary, "test_error")[0], "test_error_se": _mean(summary, "test_error")[1],
        "kl": kl, "kl_se": kl_se,
        "neg_recon": -recon, "neg_recon_se": recon_se,
        "active_units": summary.get("active_units"), "latent_units": summary.get("latent_units"),
        "khat_above_0.7": share if share is not None else float("nan"),
        "bits_per_dim": bpd, "bits_per_dim_se": bpd_se,
        "train_seconds": float(seconds), "num_parameters": config.get("num_parameters"),
        "split": proto.get("split"), "num_points": proto.get("num_points"),
        **quality_record(summary),
        "published": "; ".join(published.short_label(r) for r in match.rows) if match is not None and match.rows
        else "none matches",
    }


IMPLICIT_REASON = "implicit generator: x = G(z) has no density"


def quality_record(summary: dict) -> dict:
    """The sample-quality numbers of a run's eval.json (NaN where it has none) and the data's reference row."""
    q = summary.get("sample_quality")
    ref = summary.get("sample_quality_reference")
    nan = float("nan")
    if not isinstance(q, dict):
        why = summary.get("sample_quality_reason") or ("not computed (evaluated before the sample-quality metrics; "
                                                       "`zoo report --reevaluate` computes them)")
        return {"fcd": nan, "kcd": nan, "kcd_se": nan, "score": nan, "score_se": nan, "precision": nan,
                "recall": nan, "quality_samples": None, "quality_real": None, "quality_reason": why,
                "classifier": None, "quality_reference": None}
    c = q.get("classifier") or {}
    return {"fcd": q["frechet_classifier_distance"], "kcd": q["kernel_classifier_distance"]["mean"],
            "kcd_se": q["kernel_classifier_distance"]["se"], "score": q["classifier_score"]["mean"],
            "score_se": q["classifier_score"]["se"], "precision": q["precision"], "recall": q["recall"],
            "quality_samples": q.get("num_samples"), "quality_real": q.get("num_real"), "quality_reason": None,
            "classifier": (f"{c.get('name')} v{c.get('version')}, seed {c.get('seed')}, {c.get('inputs')}, test "
                           f"accuracy {100 * c.get('test_accuracy', nan):.1f}%"),
            "quality_reference": ref if isinstance(ref, dict) else None}


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
            nll_header(df): f"none: {r['nll_reason']}" if r.get("implicit") is True else _pm(r["nll"], r["nll_se"]) + (
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
    implicit = df[df["implicit"] == True]["run"].tolist() if "implicit" in df else []  # noqa: E712
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
                         f"{r['binarize']}, " + ("no likelihood (implicit generator)" if r.get("implicit") is True
                                                 else "exact log-likelihood" if r["exact"] else f"K={int(r['K'])}"))
    if implicit:
        lines.append(f"Implicit generators ({', '.join(implicit)}): x = G(z) has no density, so there is no NLL, "
                     "-ELBO, KL or k-hat; they are compared by sample quality (the table below).")
    if exact:
        lines.append(f"Models without latent variables ({', '.join(exact)}): NLL is the exact -log p(x); K, KL, "
                     "k-hat and active units do not apply.")
    lines.append("Weights of the best validation epoch. -ELBO, KL(q||p) and the reconstruction term E_q[log p(x|z)] "
                 "are averages over the same K samples; every figure is a mean over test points ± its standard "
                 "error. k-hat: PSIS Pareto shape of each point's K log-weights (share of points above 0.7, where the "
                 "estimate is unreliable). Bits/dim = NLL / (D ln 2) where the data are pixels. Rows sorted by NLL.")
    return lines


# ------------------------------------------------------------------------------------------------ sample quality
QUALITY_COLUMNS = ("FCD (zoo classifier) \u2193", "KCD (zoo classifier) \u2193", "classifier score \u2191",
                   "precision \u2191", "recall \u2191")


def _g(v, digits=3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _g_pm(mean, se, digits=3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.{digits}g} ± {se:.2g}"


def _reference_key(r) -> tuple:
    return (r["data"], r["binarize"])


def quality_table(df: pd.DataFrame) -> pd.DataFrame:
    """The sample-quality table: one row per run (in the runs table's order), then the data's own row per data set
    and binarization (the validation split in place of samples, against the same test points: what a generator that
    draws from the data distribution scores). Runs without the metrics say why in the FCD column."""
    rows, refs = [], {}
    for _, r in df.iterrows():
        row = {"run": r["run"], "model": r["model"], "data (binarization)": f"{r['data']} ({r['binarize']})",
               "samples": "-" if pd.isna(r["quality_samples"]) or r["quality_samples"] is None
               else f"{int(r['quality_samples'])}"}
        if r["quality_reason"]:
            row.update({c: "-" for c in QUALITY_COLUMNS})
            row[QUALITY_COLUMNS[0]] = f"none: {r['quality_reason']}"
        else:
            row.update({QUALITY_COLUMNS[0]: _g(r["fcd"]), QUALITY_COLUMNS[1]: _g_pm(r["kcd"], r["kcd_se"]),
                        QUALITY_COLUMNS[2]: _pm(r["score"], r["score_se"]), QUALITY_COLUMNS[3]: f"{r['precision']:.3f}",
                        QUALITY_COLUMNS[4]: f"{r['recall']:.3f}"})
            ref = r["quality_reference"]
            if ref is not None and _reference_key(r) not in refs:
                refs[_reference_key(r)] = ref
        rows.append(row)
    for (data, binarize), ref in refs.items():
        rows.append({"run": f"data: {ref.get('generated_split', 'valid')} split", "model": "(real data)",
                     "data (binarization)": f"{data} ({binarize})", "samples": f"{int(ref['num_samples'])}",
                     QUALITY_COLUMNS[0]: _g(ref["frechet_classifier_distance"]),
                     QUALITY_COLUMNS[1]: _g_pm(ref["kernel_classifier_distance"]["mean"],
                                               ref["kernel_classifier_distance"]["se"]),
                     QUALITY_COLUMNS[2]: _pm(ref["classifier_score"]["mean"], ref["classifier_score"]["se"]),
                     QUALITY_COLUMNS[3]: f"{ref['precision']:.3f}", QUALITY_COLUMNS[4]: f"{ref['recall']:.3f}"})
    return pd.DataFrame(rows)


def quality_caption(df: pd.DataFrame) -> List[str]:
    """What the sample-quality table measures: the classifier (its test accuracy), the numbers of samples and real
    points, and that these are not the Inception-based FID/KID/IS."""
    if not len(df) or not df["quality_reason"].isna().any():
        return []
    have = df[df["quality_reason"].isna()]
    classifiers = sorted(set(have["classifier"]))
    samples = sorted({int(v) for v in have["quality_samples"]})
    real = sorted({int(v) for v in have["quality_real"]})
    lines = [
        f"Samples of each model ({', '.join(map(str, samples))} per run) against the {', '.join(map(str, real))} "
        f"test points, in the features and predictions of the zoo's own classifier ({'; '.join(classifiers)}), "
        "trained on the data set's training split. These are not the Inception-based FID, KID and IS of the GAN "
        "literature, and their values are not comparable with published ones.",
        "\u2193 lower is better, \u2191 higher is better. FCD: Fréchet distance between Gaussians fitted to the classifier's penultimate-layer features (lower is "
        "better; biased upwards at small sample sizes, so compare rows at equal sizes). KCD: unbiased MMD² with the "
        "cubic polynomial kernel (Binkowski et al. 2018), mean ± standard error over disjoint subsets (0 for the "
        "data's own distribution). Classifier score: exp(E KL(p(y|x) || p(y))) (Salimans et al. 2016), from 1 "
        "(collapsed) to the number of classes. Precision and recall: share of samples inside the test points' "
        "k-nearest-neighbour manifold and of test points inside the samples' one (Kynkäänniemi et al. 2019, k = 3, "
        "on equally many points).",
        "Data rows: the validation split in place of samples, scored the same way against the same test points: what "
        "a generator that draws from the data distribution scores at these sizes. Binarized runs are scored as "
        "binary images: samples x ~ p(x), binarized test points, a classifier trained on binarized images; grey-level "
        "runs on decoder means E[x|z].",
    ]
    return lines
