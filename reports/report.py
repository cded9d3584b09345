"""``zoo report RUN_DIR... --out DIR``: runs -> one page people read (``DIR/index.html``) and its Markdown twin
(``DIR/report.md``).

For each run: its evaluation (``eval.json``, reused when present; a run without one is evaluated now through
``zoo.cli.runs.evaluate_run`` with K = ``--samples``; ``--reevaluate`` forces it), its figures in ``DIR/<run>/``
(samples, reconstructions, interpolations, latent space, per-point NLL and k-hat), its importance weights as arviz
``InferenceData`` (``DIR/<run>/importance.nc``) and the published figures that describe the same experiment
(:mod:`reports.published`). For all runs: the table (:mod:`reports.table`) and the training curves on one plot.
A cached evaluation made with another K than asked is used as it is and said so on the page, never silently mixed.

This module is where the report reaches into a run: the model and guide are rebuilt with the CLI's ``load_run`` and
evaluated with its ``evaluate_run`` (imported when called, so the CLI stays the one place that wires components).
"""
import datetime
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from inference import run_dir as rd
from inference.atomic_write import remove_leftovers, write_text
from inference.run_lock import RunLock
from zoo.errors import RunDirError
from reports import arviz_export, estimators, figures, inference_gap_table, information_table, published, render
from reports.table import (build_table, display_table, protocol_lines, quality_caption, quality_table, run_record)


@dataclass
class RunSection:
    name: str
    run_dir: str
    config: dict
    summary: dict
    metrics: list
    match: published.Match
    figures: List[Tuple[str, str]] = field(default_factory=list)   # (path relative to the report, caption)
    notes: List[str] = field(default_factory=list)                  # what is missing or differs, in words
    importance: Optional[str] = None                                 # relative path of importance.nc
    evaluated_now: bool = False


@dataclass
class ExtraTable:
    """A table of the report beyond the runs table (one row per run or per cell), with the caption that says what it
    measures: the estimators' table, the inference gap, the information decomposition..."""
    anchor: str                # the HTML id
    title: str
    caption: List[str]
    table: "object"            # pandas DataFrame, formatted strings
    notes: List[str] = field(default_factory=list)  # sentences under the table (one per run, say)


@dataclass
class Report:
    out: str
    title: str
    generated: str
    runs: List[RunSection]
    table: "object"            # pandas DataFrame, numeric
    display: "object"          # pandas DataFrame, formatted
    protocol: List[str]
    warnings: List[str]
    curves: Optional[str]
    players: Optional[str] = None  # adversarial runs: both players' losses (reports/adversarial_figures.py)
    quality: Optional[object] = None  # the sample-quality table (pandas DataFrame, formatted), beside the NLL table
    quality_caption: List[str] = field(default_factory=list)
    tables: List[ExtraTable] = field(default_factory=list)  # more tables under the results, in order
    html_path: str = ""
    md_path: str = ""


def _unique_names(run_dirs: List[str]) -> List[str]:
    names, seen = [], {}
    for d in run_dirs:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(os.path.abspath(d)))) or "run"
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n + 1}")
    return names


def _load_points(run_dir: str, summary: dict) -> Optional[dict]:
    from zoo.cli import runs as zoo_runs

    return zoo_runs.read_eval_points(run_dir, summary)


def _attempt(section: RunSection, what: str, fn: Callable, log):
    """Draw one figure; a failure becomes a visible note on the page (and a warning on stderr), not a crash."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the page says what failed
        msg = f"{what} could not be drawn: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        section.notes.append(msg)
        log(f"zoo report: warning: {section.name}: {msg}", file=sys.stderr)
        if os.environ.get("ZOO_REPORT_DEBUG"):
            traceback.print_exc()
        return None


def _latent_names(model):
    try:
        return [s.name for s in model.latent_sites()]
    except Exception:  # noqa: BLE001 - a model outside the contract: assume it has latents
        return ["?"]


def _evaluate(run_dir: str, name: str, samples: int, reevaluate: bool, device, progress, log,
              quality_samples: Optional[int] = None):
    from zoo.cli import runs as zoo_runs  # looked up at call time (tests replace evaluate_run)

    notes = []
    try:
        summary = zoo_runs.read_eval(run_dir)
        if summary is not None:
            _load_points(run_dir, summary)  # eval_points.pt must be readable and of the same evaluation
    except RunDirError as e:  # a damaged cache is re-made, and the page says so
        notes.append(f"{name}: the cached evaluation could not be used ({e}); it was re-evaluated with K={samples}.")
        log(f"zoo report: note: {notes[-1]}", file=sys.stderr)
        summary = None
    if summary is None or reevaluate:
        log(f"evaluating {run_dir} with K={samples} importance samples per test point")
        extra = {} if quality_samples is None else {"quality_samples": quality_samples}
        return zoo_runs.evaluate_run(run_dir, samples, device=device, progress=progress, **extra), True, notes
    proto = summary.get("protocol") or {}
    k = proto.get("num_samples")
    exact = str(proto.get("estimator", "")).startswith("exact")  # no latents: K does not apply
    if k != samples and not exact and not summary.get("implicit"):
        notes.append(f"The cached evaluation of {name} used K={k} importance samples, not the K={samples} asked for; "
                     f"its numbers are shown with K={k}. Run `zoo report --reevaluate --samples {samples}` to "
                     f"re-evaluate it with K={samples}.")
    if proto.get("split", "test") != "test":
        notes.append(f"The cached evaluation of {name} is on the {proto.get('split')} split, not the test split; "
                     "`zoo report --reevaluate` evaluates on the test split.")
    best, ev = rd.path(run_dir, rd.BEST), rd.path(run_dir, rd.EVAL)
    if os.path.exists(best) and os.path.getmtime(best) > os.path.getmtime(ev) + 1:
        notes.append(f"{name}: best.pt is newer than eval.json, so the cached evaluation may be of older weights; "
                     "`zoo report --reevaluate` re-evaluates it.")
    return summary, False, notes


def _run_figures(section: RunSection, out_dir: str, points: Optional[dict], device, log):
    from zoo.cli.assemble import load_run, resolve_device

    rel = lambda f: f"{section.name}/{f}"  # noqa: E731
    path = lambda f: os.path.join(out_dir, section.name, f)  # noqa: E731
    K = (section.summary.get("protocol") or {}).get("num_samples")

    comps = _attempt(section, "the model (for samples, reconstructions and interpolations)",
                     lambda: load_run(section.run_dir, resolve_device(device or "auto")), log)
    implicit = section.summary.get("implicit") is True
    has_latents = comps is None or bool(_latent_names(comps.model)) and not implicit
    if implicit:
        section.notes.append("An implicit generator (x = G(z)) has no density and no encoder: reconstructions, "
                             "interpolations of posterior means, the latent space and the per-point NLL and k-hat do "
                             "not apply; see its sample quality.")
    elif comps is not None and not has_latents:
        section.notes.append("The model has no latent variables: reconstructions, interpolations and the latent space "
                             "do not apply.")
    if comps is not None and comps.data.image_shape is None:
        section.notes.append(f"The data are not images (vectors of dimension {comps.data.dim}), so samples, "
                             "reconstructions and interpolations are not drawn.")
    elif comps is not None:
        shape, test = tuple(comps.data.image_shape), comps.data.test
        if _attempt(section, "samples", lambda: figures.samples_figure(comps.model, test.x, shape,
                                                                       path("samples.png")), log):
            section.figures.append((rel("samples.png"), "Samples from the model" + (
                ": E[x|z], z ~ p(z)" if has_latents else ": x = G(z), z ~ p(z)" if implicit else "")))
        if has_latents:
            chosen = torch.linspace(0, len(test) - 1, min(32, len(test))).round().long().to(test.x.device)
            if _attempt(section, "reconstructions", lambda: figures.reconstructions_figure(
                    comps.model, comps.guide, test.x[chosen], shape, path("reconstructions.png")), log):
                section.figures.append((rel("reconstructions.png"),
                                        "Test points spread over the test split (odd rows) and their reconstructions "
                                        "E[x|z], z ~ q(z|x) (even rows)"))
            site, why = figures.single_latent_site(comps.model)
            if site is None:
                section.notes.append(f"Interpolations: not available ({why}).")
            elif points is None or points.get("posterior_means") is None:
                section.notes.append("Interpolations: not available (no posterior means in eval_points.pt).")
            elif _attempt(section, "interpolations", lambda: figures.interpolation_figure(
                    comps.model, site, points["posterior_means"], points.get("labels"), shape, comps.data.dim,
                    test.x, path("interpolations.png")), log):
                section.figures.append((rel("interpolations.png"),
                                        f"Interpolations: linear in {site} between the posterior means of two test "
                                        "points (one pair per row), decoded"))

    if comps is not None and not implicit:
        _family_figures(section, comps, os.path.join(out_dir, section.name), rel, has_latents, log)
    if implicit:
        if comps is not None:
            _code_figures(section, comps, os.path.join(out_dir, section.name), rel, log)
        return
    if points is None:
        section.notes.append("eval_points.pt is missing, so the per-point figures (latent space, NLL, k-hat) and the "
                             "arviz export are skipped; `zoo report --reevaluate` writes it.")
        return
    means = points.get("posterior_means")
    if means is not None and means.ndim == 2 and means.shape[0] > 1:
        if _attempt(section, "latent space", lambda: figures.latent_figure(means, points.get("labels"),
                                                                           path("latent.png")), log):
            how = "directly" if means.shape[1] <= 2 else "as a PCA projection"
            section.figures.append((rel("latent.png"), f"Test set in latent space (E[z|x]) {how}, coloured by label"
                                    if points.get("labels") is not None else f"Test set in latent space {how}"))
    elif has_latents:
        section.notes.append("Latent space: not available (no continuous latent means in eval_points.pt).")
    if _attempt(section, "NLL histogram", lambda: figures.nll_hist_figure(-points["log_px"], K, path("nll.png")), log):
        section.figures.append((rel("nll.png"), f"Per-point NLL on the test split (K={K})"))
    if not np.isfinite(points["khat"]).any():
        section.notes.append(f"PSIS k-hat is not defined for this evaluation (K={K}), so it is not drawn.")
    elif _attempt(section, "k-hat histogram", lambda: figures.khat_figure(points["khat"], path("khat.png")), log):
        section.figures.append((rel("khat.png"), "PSIS k-hat per test point, thresholds 0.5 and 0.7"))
    if _attempt(section, "K-sweep", lambda: estimators.k_sweep_figure(section.summary, path("ksweep.png")), log):
        section.figures.append((rel("ksweep.png"), "NLL from the first K of the same importance weights (log axis)"
                                ", with the jackknife and AIS where evaluated. " + estimators.reading(section.summary)))
    if points.get("log_weights") is None:
        section.notes.append("The evaluation kept no log-weights, so importance.nc is not written.")
    else:
        proto = section.summary.get("protocol") or {}
        done = _attempt(section, "the arviz export", lambda: arviz_export.write_importance(
            path(arviz_export.FILENAME), points["log_weights"], points["khat"], points.get("labels"),
            {"run": section.name, "data": proto.get("data"), "split": proto.get("split"), "num_samples": K,
             "binarize": proto.get("binarize")}), log)
        if done:
            section.importance = rel(arviz_export.FILENAME)


FLOW_CAPTIONS = {
    "flow_temperatures.png": "Samples x = f^-1(T eps) at temperatures T (one row per T; T = 0 is the base mean)",
    "flow_density.png": "Model density on a grid beside the test points",
    "flow_interpolation.png": "Interpolations in the flow's latent space z = f(x) between pairs of test points",
}


def _code_figures(section: RunSection, comps, folder: str, rel, log):
    """An implicit generator with a categorical code (InfoGAN): what each code controls, codes against labels."""
    from reports.infogan_figures import infogan_figures, is_infogan

    if is_infogan(comps.model, comps.guide):
        made = _attempt(section, "InfoGAN's code figures",
                        lambda: infogan_figures(comps.model, section.summary, folder), log)
        for png, caption in made or []:
            section.figures.append((rel(os.path.basename(png)), caption))


def _family_figures(section: RunSection, comps, folder: str, rel, has_latents: bool, log):
    """The figures of a model family: flow density models (temperatures, 2-D densities, interpolations in z) and
    class-conditional models (M2: conditional generation and analogies)."""
    if not has_latents:
        from reports.flow_figures import flow_figures

        made = _attempt(section, "flow figures", lambda: flow_figures(comps.model, comps.data, folder), log)
        for png in made or []:
            name = os.path.basename(png)
            section.figures.append((rel(name), FLOW_CAPTIONS.get(name, name)))
        return
    from reports.multimodal_figures import is_multimodal, multimodal_figures

    if is_multimodal(comps.model):  # mvae: cross-modal generation and joint samples
        made = _attempt(section, "cross-modal generation",
                        lambda: multimodal_figures(comps.model, comps.guide, comps.data, folder), log)
        for png, caption in made or []:
            section.figures.append((rel(os.path.basename(png)), caption))
        return
    from reports.semi_supervised_figures import is_class_conditional, semi_supervised_figures

    if not is_class_conditional(comps.model, comps.guide)[0]:
        return
    made = _attempt(section, "conditional generation and analogies",
                    lambda: semi_supervised_figures(comps.model, comps.guide, comps.data, folder), log)
    if made:
        for png, caption in made[0]:
            section.figures.append((rel(os.path.basename(png)), caption))


def build_report(run_dirs: List[str], out: str, samples: int = 5000, title: Optional[str] = None,
                 reevaluate: bool = False, device: str = "auto", progress: bool = True, log=print,
                 quality_samples: Optional[int] = None) -> Report:
    """Write ``out/index.html`` and ``out/report.md`` comparing the runs in ``run_dirs``; returns the :class:`Report`.
    ``quality_samples``: samples for the sample-quality metrics of runs evaluated now (default: evaluate_run's)."""
    if not run_dirs:
        raise ValueError("no run directories")
    with RunLock(out, "zoo report", create=True):  # one report at a time in a folder
        remove_leftovers(out)
        return _build_report(run_dirs, out, samples, title, reevaluate, device, progress, log, quality_samples)


def _build_report(run_dirs, out, samples, title, reevaluate, device, progress, log, quality_samples=None) -> Report:
    names = _unique_names(run_dirs)
    sections, warnings, records = [], [], []
    from zoo.errors import ZooError

    failed = []
    for run_dir, name in zip(run_dirs, names):
        try:
            config = rd.read_config(run_dir)
            summary, evaluated, notes = _evaluate(run_dir, name, samples, reevaluate, device, progress, log,
                                                  quality_samples)
        except ZooError as e:  # one broken run does not sink the report of the others; the page says so
            if len(run_dirs) == 1:
                raise
            failed.append(e)
            warnings.append(f"{run_dir} is left out of this report: {str(e).splitlines()[0]}")
            log(f"zoo report: warning: {warnings[-1]}", file=sys.stderr)
            continue
        warnings += notes
        metrics = rd.read_metrics(run_dir)
        section = RunSection(name, run_dir, config, summary, metrics, published.match(config, summary),
                             evaluated_now=evaluated)
        os.makedirs(os.path.join(out, name), exist_ok=True)
        _run_figures(section, out, _load_points(run_dir, summary), device, log)
        sections.append(section)
        records.append(run_record(name, config, summary, metrics, section.match))

    if not sections:
        raise failed[0]
    table = build_table(records)
    from reports.adversarial_figures import estimate_label, is_adversarial_run, players_figure

    curves, players = "curves.png", "players.png"
    likelihood_runs = {s.name: s.metrics for s in sections if not is_adversarial_run(s.metrics)}
    if not likelihood_runs or not figures.curves_figure(likelihood_runs, os.path.join(out, curves)):
        curves = None
    labels = {s.name: estimate_label(s.config) for s in sections if is_adversarial_run(s.metrics)}
    if not players_figure({s.name: s.metrics for s in sections}, os.path.join(out, players), labels):
        players = None
    report = Report(out=out, title=title or f"Zoo report: {', '.join(names)}",
                    generated=datetime.datetime.now().isoformat(timespec="seconds"), runs=sections, table=table,
                    display=display_table(table), protocol=protocol_lines(table), warnings=warnings, curves=curves,
                    players=players, quality=quality_table(table), quality_caption=quality_caption(table),
                    tables=[ExtraTable("estimators", "How far the NLL can be trusted", estimators.CAPTION,
                                       estimators.estimators_table(sections), estimators.readings(sections)),
                            ExtraTable("information", "Information in the KL term", information_table.CAPTION,
                                       information_table.information_table(sections)),
                            ExtraTable("inference-gap", "Inference gap: approximation and amortization",
                                       inference_gap_table.CAPTION, inference_gap_table.inference_gap_table(sections))])
    report.html_path = os.path.join(out, "index.html")
    report.md_path = os.path.join(out, "report.md")
    write_text(report.html_path, render.to_html(report))
    write_text(report.md_path, render.to_markdown(report))
    return report


def run_from_args(args) -> int:
    """The ``zoo report`` command."""
    report = build_report(args.run_dirs, args.out, samples=args.samples, title=args.title,
                          reevaluate=args.reevaluate, device=args.device, progress=not args.no_progress,
                          quality_samples=getattr(args, "quality_samples", None))
    for w in report.warnings:
        print(f"note: {w}")
    print(f"wrote {report.html_path} and {report.md_path}")
    return 0
