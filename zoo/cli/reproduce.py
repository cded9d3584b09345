"""``zoo reproduce TABLE``: rerun a paper's table from its configuration file and set the measured numbers beside the
published ones.

The table's configuration (:mod:`zoo.tables`, :mod:`zoo.config_files`) gives the cells and the paper's settings; the
published numbers come from :mod:`reports.published`. For every cell the planner decides, in order:

* the paper's row cannot be run by the zoo (``runnable = false``): listed with the reason;
* the cell needs a GPU (``needs_gpu``) and none is here: listed, run only when ``--cells`` names it;
* its data set is absent: listed with the file to place (:func:`zoo.data.local_files.missing_files`, or the file the
  configuration names when the zoo has no loader of that name);
* otherwise it is a run directory under ``--out``, named ``VARIANT@DATASET`` (``@NAME`` for a data set given with
  ``--data``, ``-budgetF`` under ``--budget``); cells that would train the same run share it.

Each run is the command ``zoo train --config FILE --cell CELL --out DIR [flags]`` followed by ``zoo evaluate DIR
--samples K``, run in this process one after another, or printed (``--print-commands``) for a scheduler. What is on
disk decides what is left: a run whose eval.json is complete (the planned K, the finished training) is skipped, a
finished run without it is evaluated, a killed one is continued with ``zoo train --resume DIR``, a directory with a
config.json and no checkpoint is started again; a directory holding a run of other settings is left alone and listed.

``--budget F`` scales the epochs by F (warm-up and patience too, each at least 1 epoch) and the number of importance
samples K by F (at least min(K, 100)); ``--data NAME`` runs every cell on NAME when NAME is none of the table's data
sets (else it keeps the cells of that data set). Such cells are marked "not comparable" in the report, which lists
every cell of the table with its published number (report.md, report.json, index.html in ``--out``).
"""
import fnmatch
import html
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

from zoo.errors import ConfigError, DataError, RunDirError, ZooError

MIN_SAMPLES_UNDER_BUDGET = 100


def add_parser(sub, positive_int):
    r = sub.add_parser("reproduce", help="rerun a paper's table (vampprior, sylvester, iwae, m2) and report it beside "
                                         "the published numbers")
    r.add_argument("table", help="a registered table (`zoo list`: vampprior, sylvester, iwae, m2) or a configuration "
                                 "file FILE.toml")
    r.add_argument("--data", default=None, metavar="NAME",
                   help="one of the table's data sets: only its cells; any other data set (e.g. mnist5k): every cell "
                        "run on it, marked not comparable")
    r.add_argument("--budget", type=_budget, default=None, metavar="F",
                   help="scale epochs, warm-up, patience (each at least 1) and K (at least 100) by F in (0, 1]: a quick "
                        "look, marked not comparable")
    r.add_argument("--cells", default=None, metavar="PATTERNS",
                   help="comma-separated cell names or patterns (vae-*, *@omniglot, a variant or data set name); "
                        "cells named here run even where they want a GPU")
    r.add_argument("--out", default=None, help="folder of the run directories and the report "
                                               "(default runs/reproduce/TABLE)")
    r.add_argument("--print-commands", action="store_true",
                   help="print the zoo train / zoo evaluate commands of the cells left to run, run nothing")
    r.add_argument("--report-only", action="store_true", help="write the report from what is on disk, run nothing")
    r.add_argument("--data-root", default=None, help="folder of the data sets (default $ZOO_DATA or ./data)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch's CPU threads for every cell (default torch's; on a busy shared machine 1 can be many "
                        "times faster: measured 1.1 s against 19-30 s per mnist5k epoch of vae-standard on 2 shared "
                        "cores)")
    r.add_argument("--no-progress", action="store_true")
    return r


def _budget(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


# ------------------------------------------------------------------------------------------------------ planning
@dataclass
class Run:
    name: str
    dir: str
    train_argv: List[str]
    eval_argv: Optional[List[str]]          # None: a stage (trained, never evaluated)
    samples: Optional[int]
    stage: bool = False
    needs: List[str] = field(default_factory=list)  # run directories to finish first (stages)
    state: str = "train"                    # train / overwrite / resume / evaluate / done / conflict / failed ...
    detail: str = ""
    seconds: float = 0.0


@dataclass
class PlannedCell:
    cell: object                            # zoo.config_files.Cell
    data: str                               # the data set the run uses
    status: str                             # run / not runnable / needs gpu / data absent
    reason: str = ""
    run: Optional[Run] = None
    samples: Optional[int] = None
    not_comparable: List[str] = field(default_factory=list)


@dataclass
class Plan:
    config: object                          # zoo.config_files.ConfigFile
    out: str
    budget: Optional[float]
    data: Optional[str]
    substitute: Optional[str]
    cells: List[PlannedCell]
    runs: List[Run]
    threads: Optional[int] = None


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def budget_flags(values: dict, budget: Optional[float]) -> List[str]:
    """``--epochs E --warmup W --patience P`` scaled by ``budget`` (each at least 1; absent ones stay absent)."""
    if budget is None:
        return []
    epochs = values.get("epochs") or 10
    flags = ["--epochs", str(max(1, _round(epochs * budget)))]
    if values.get("warmup"):
        flags += ["--warmup", str(max(1, _round(values["warmup"] * budget)))]
    if values.get("patience"):
        flags += ["--patience", str(max(1, _round(values["patience"] * budget)))]
    return flags


def scaled_samples(k: int, budget: Optional[float]) -> int:
    if budget is None:
        return k
    return max(min(k, MIN_SAMPLES_UNDER_BUDGET), _round(k * budget))


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _data_missing(name: str, root, files: str) -> Optional[str]:
    """None when data set ``name`` can be loaded here as far as its files go, else what to place where."""
    from zoo.data import DATASETS

    if name.endswith(".npz"):
        return None if os.path.isfile(name) else f"the file {name} does not exist"
    if name not in DATASETS:
        return (f"the zoo has no data set {name!r} (no loader registered)" +
                (f"; the paper's files: {files}" if files else ""))
    try:
        from zoo.data.local_files import missing_files
    except ImportError:  # pragma: no cover - an older zoo without the helper: load it to see
        return None
    return missing_files(name, root)


def _matches(cell, patterns: List[str]) -> bool:
    names = [cell.name, cell.variant or "", cell.dataset or ""]
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names if n)


def make_plan(args) -> Plan:
    from zoo import config_files
    from zoo.tables import table_path

    cf = config_files.load(table_path(args.table))
    out = args.out or os.path.join("runs", "reproduce", cf.name)
    cells = cf.cells()
    datasets = cf.data.get("datasets", {})
    substitute = None
    if args.data:
        keys = [k for k, d in datasets.items() if args.data in (k, d.get("data"))]
        if keys:
            cells = [c for c in cells if c.dataset in keys]
        else:
            substitute = args.data
    explicit = []
    if args.cells:
        explicit = [p.strip() for p in args.cells.split(",") if p.strip()]
        chosen = [c for c in cells if _matches(c, explicit)]
        if not chosen:
            raise ConfigError(f"--cells {args.cells}: no cell of table {cf.name} matches; its cells: "
                              f"{', '.join(c.name for c in cells)}")
        cells = chosen
    cuda = args.device.startswith("cuda") or (args.device == "auto" and _has_cuda())
    suffix = "" if args.budget is None else f"-budget{args.budget:g}"
    planned, runs, by_key, stages = [], [], {}, {}
    absent_cache = {}

    def identity(cell):  # cells of one identity train the same run (with --data NAME a variant's data sets collapse)
        values = cf.converted(cell)
        samples = scaled_samples(int(cell.evaluate.get("samples", 5000)), args.budget)
        return (cell.variant, tuple(sorted((k, repr(v)) for k, v in values.items()
                                           if not (substitute and k in ("data",) + config_files.DATA_BOUND))), samples)

    variant_runs = {}
    for cell in cells:
        if cell.runnable:
            variant_runs.setdefault(cell.variant, set()).add(identity(cell))
    for cell in cells:
        data = substitute or str(cell.options.get("data") or "mnist5k")
        pc = PlannedCell(cell, data, "run")
        if substitute:
            paper = str(cell.options.get("data") or cell.dataset_label)
            if cell.dataset_label and cell.dataset_label != paper:
                paper += f" ({cell.dataset_label})"
            pc.not_comparable.append(f"run on {substitute}, the paper on {paper}")
        if args.budget is not None:
            pc.not_comparable.append(f"budget {args.budget:g} of the paper's epochs")
        if not cell.runnable:
            pc.status, pc.reason = "not runnable", str(cell.meta.get("reason") or "the zoo cannot run this row")
            planned.append(pc)
            continue
        if cell.meta.get("needs_gpu") and not cuda and not _matches(cell, [p for p in explicit if "*" not in p
                                                                             and "?" not in p]):
            pc.status = "needs gpu"
            pc.reason = ("wants a GPU (none here): name it with --cells to run it on the CPU anyway")
            planned.append(pc)
            continue
        root = args.data_root or cell.options.get("data_root")
        if (data, root) not in absent_cache:
            absent_cache[(data, root)] = _data_missing(data, root, "" if substitute else
                                                       str(cell.meta.get("files") or ""))
        if absent_cache[(data, root)]:
            pc.status, pc.reason = "data absent", absent_cache[(data, root)]
            planned.append(pc)
            continue
        values = cf.converted(cell)
        k = int(cell.evaluate.get("samples", 5000))
        pc.samples = scaled_samples(k, args.budget)
        if pc.samples != k:
            pc.not_comparable.append(f"K = {pc.samples} importance samples, the paper's {k}")
        flags = _run_flags(values, substitute, args)
        needs = []
        m1 = values.get("m1_run")
        if isinstance(m1, str) and m1.startswith("@"):
            stage = _stage_run(cf, m1[1:], data, substitute, suffix, out, args, stages, runs)
            needs.append(stage.dir)
            flags += ["--m1-run", stage.dir]
        key = identity(cell)
        run = by_key.get(key)
        if run is None:
            name = cell.name
            if substitute:
                one = cell.variant is not None and len(variant_runs.get(cell.variant, ())) == 1
                name = f"{cell.variant if one else cell.name}@{substitute}"
            name += suffix
            run_dir = os.path.join(out, name)
            train = ["train", "--config", cf.path, "--cell", cell.name, "--out", run_dir] + flags
            quality = int(cell.evaluate.get("quality_samples", 0))
            evaluate = ["evaluate", run_dir, "--samples", str(pc.samples), "--batch-size",
                        str(cell.evaluate.get("batch_size", 100)), "--quality-samples", str(quality)]
            if args.device != "auto":
                evaluate += ["--device", args.device]
            if args.no_progress:
                evaluate += ["--no-progress"]
            run = Run(name, run_dir, train, evaluate, pc.samples, needs=needs)
            by_key[key] = run
            runs.append(run)
        pc.run = run
        planned.append(pc)
    return Plan(cf, out, args.budget, args.data, substitute, planned, runs, getattr(args, "threads", None))


def _run_flags(values: dict, substitute, args) -> list:
    """The `zoo train` flags of a cell or stage beyond its config: the budget's scaled epochs, the substitute data
    set, the data root, the device and --no-progress."""
    flags = budget_flags(values, args.budget)
    if substitute:
        flags += ["--data", substitute]
    if args.data_root:
        flags += ["--data-root", args.data_root]
    if args.device != "auto":
        flags += ["--device", args.device]
    if args.no_progress:
        flags += ["--no-progress"]
    return flags


def _stage_run(cf, key, data, substitute, suffix, out, args, stages, runs) -> Run:
    """The helper run ``[stages.KEY]`` on ``data`` (trained before the cells that name it)."""
    if (key, data) in stages:
        return stages[(key, data)]
    name = f"stage-{key}@{data}{suffix}"
    values = cf.converted(cf.stage(key))
    flags = _run_flags(values, substitute, args)
    run_dir = os.path.join(out, name)
    run = Run(name, run_dir, ["train", "--config", cf.path, "--cell", f"stage-{key}", "--out", run_dir] + flags,
              None, None, stage=True)
    stages[(key, data)] = run
    runs.insert(0, run)
    return run


# ------------------------------------------------------------------------------------------------------ state
def _planned_settings(train_argv: List[str]) -> dict:
    """What ``zoo train`` with these arguments records as config.json's ``config_file.settings``."""
    from zoo.cli.main import build_parser
    from zoo.config_files import apply_to_train_args

    args = build_parser().parse_args(train_argv)
    return apply_to_train_args(args, train_argv)["settings"]


def eval_complete(run_dir: str, samples: int) -> bool:
    """eval.json is there, undamaged, with the planned K, made after the last epoch, and its points match it."""
    from inference import run_dir as rd
    from zoo.cli.runs import read_eval, read_eval_points

    try:
        summary = read_eval(run_dir)
        if summary is None:
            return False
        if summary["protocol"].get("num_samples") != samples or summary["protocol"].get("split") != "test":
            return False
        if summary.get("epochs_trained") != len(rd.read_metrics(run_dir)):
            return False
        return read_eval_points(run_dir, summary) is not None
    except (RunDirError, KeyError, TypeError):
        return False


def run_state(run: Run):
    """Set ``run.state`` from what its directory holds (see the module docstring)."""
    from inference import checkpoint as ckpt
    from inference import run_dir as rd

    if not rd.is_run(run.dir):
        run.state = "train"
        return
    if not os.path.exists(rd.path(run.dir, rd.CONFIG)):
        run.state, run.detail = "overwrite", "a killed start (no config.json)"
        return
    try:
        config = rd.read_config(run.dir)
    except RunDirError as e:
        run.state, run.detail = "conflict", str(e)
        return
    record = config.get("config_file") or {}
    planned = _planned_settings(run.train_argv)
    if record.get("settings") != planned:
        differs = sorted(k for k in set(planned) | set(record.get("settings") or {})
                         if (record.get("settings") or {}).get(k) != planned.get(k))
        run.state = "conflict"
        what = ", ".join(differs[:4]) or "not made by zoo train --config"
        run.detail = f"{run.dir} holds a run of other settings ({what}); remove it or give another --out"
        return
    if not os.path.exists(rd.path(run.dir, rd.CHECKPOINT)):
        run.state, run.detail = "overwrite", "killed before its first checkpoint"
        return
    try:
        progress = ckpt.load(rd.path(run.dir, rd.CHECKPOINT)).get("progress", {})
    except RunDirError as e:
        run.state, run.detail = "conflict", str(e)
        return
    if not progress.get("finished"):
        run.state, run.detail = "resume", f"killed after epoch {progress.get('epoch', 0)}"
        return
    if run.stage or eval_complete(run.dir, run.samples):
        run.state = "done"
        return
    run.state = "evaluate"


# ------------------------------------------------------------------------------------------------------ running
def _invoke(argv: List[str]):
    """Run a zoo command in this process exactly as the command line ``zoo ARGV`` would (errors raised)."""
    from zoo.cli.main import COMMANDS, build_parser

    args = build_parser().parse_args(argv)
    args._argv = list(argv)
    return COMMANDS[args.command](args)


def _quote(argv: List[str]) -> str:
    import shlex

    return "zoo " + " ".join(shlex.quote(a) for a in argv)


def commands(run: Run) -> List[List[str]]:
    """The commands left for ``run`` in its state."""
    if run.state in ("train", "overwrite"):
        first = run.train_argv + (["--overwrite"] if run.state == "overwrite" else [])
        return [first] + ([run.eval_argv] if run.eval_argv else [])
    if run.state == "resume":
        resume = ["train", "--resume", run.dir] + (["--no-progress"] if "--no-progress" in run.train_argv else [])
        device = run.train_argv.index("--device") if "--device" in run.train_argv else None
        if device is not None:
            resume += ["--device", run.train_argv[device + 1]]
        return [resume] + ([run.eval_argv] if run.eval_argv else [])
    if run.state == "evaluate":
        return [run.eval_argv]
    return []


def execute(plan: Plan, out=None) -> int:
    out = out or sys.stdout
    todo = [r for r in plan.runs if r.state in ("train", "overwrite", "resume", "evaluate")]
    failed = {}
    for i, run in enumerate(todo):
        blocked = [d for d in run.needs if d in failed]
        if blocked:
            run.state, run.detail = "failed", f"its stage {blocked[0]} failed: {failed[blocked[0]]}"
            failed[run.dir] = run.detail
            continue
        print(f"[{i + 1}/{len(todo)}] {run.name}: {run.state}" + (f" ({run.detail})" if run.detail else ""),
              file=out, flush=True)
        t0 = time.perf_counter()
        try:
            for argv in commands(run):
                print("  " + _quote(argv), file=out, flush=True)
                _invoke(argv)
            run.state, run.detail = "done", ""
        except DataError as e:
            run.state, run.detail = "data absent", str(e)
            failed[run.dir] = str(e)
        except ZooError as e:
            run.state, run.detail = "failed", str(e)
            failed[run.dir] = str(e)
        run.seconds = time.perf_counter() - t0
        print(f"  {run.state} in {run.seconds:.0f} s" + (f": {run.detail}" if run.detail else ""), file=out,
              flush=True)
    return len(failed)


# ------------------------------------------------------------------------------------------------------ the report
def published_row(plan: Plan, cell, metric: str):
    """The published row of ``cell``'s ``metric`` in the table's paper (reports/published.py), or None."""
    from reports import published as pub
    from zoo.references import canonical

    o = dict(cell.options)
    o.update(cell.meta.get("match") or {})
    from zoo.cli.semi_supervised import model_default

    model = canonical(str(o.get("model", "vae")))

    def default(kind, fallback):
        try:
            return model_default(model, kind, fallback)
        except ZooError:  # a published family the zoo has no model for (m1+tsvm)
            return fallback

    config = {"model": {"name": model, "options": {"prior": o.get("prior", "standard")}},
              "guide": o.get("guide") or default("guide", "diagonal"),
              "objective": o.get("objective") or default("objective", "elbo"),
              "data": {"name": o.get("data"), "binarize": o.get("binarize"), "labels": o.get("labels")},
              "train": {"beta": o.get("beta", 1.0)}}
    cite = plan.config.table.get("published")
    match = pub.match(config)
    rows = [r for r in match.rows if r.cite == cite and r.metric == metric]
    return rows[0] if rows else None


def measured_value(run_dir: str, metric: str):
    """(mean, se) of ``metric`` in the run's eval.json, in the published row's units, or None."""
    from inference import run_dir as rd
    from zoo.cli.runs import read_eval

    try:
        summary = read_eval(run_dir)
    except RunDirError:
        return None
    if summary is None:
        return None
    if metric in ("nll", "neg_elbo", "bits_per_dim"):
        v = summary.get(metric)
        return (v["mean"], v["se"]) if isinstance(v, dict) else None
    if metric == "neg_elbo_bits_per_dim":
        if not isinstance(summary.get("bits_per_dim"), dict):
            return None
        dim = ((rd.read_config(run_dir).get("data") or {}).get("info") or {}).get("dim")
        factor = 1.0 / (dim * math.log(2)) if dim else None
        v = summary.get("neg_elbo")
        return (v["mean"] * factor, v["se"] * factor) if factor and isinstance(v, dict) else None
    if metric == "test_error":
        v = summary.get("test_error")
        return (100 * v["mean"], 100 * v["se"]) if isinstance(v, dict) else None
    return None


_STATUS_TEXT = {"done": "measured", "not runnable": "not run", "needs gpu": "not run (GPU)",
                "data absent": "data absent", "failed": "failed", "conflict": "not run (conflict)"}


def report_rows(plan: Plan) -> List[dict]:
    from reports import published as pub

    rows = []
    for pc in plan.cells:
        cell = pc.cell
        status, reason = pc.status, pc.reason
        if pc.run is not None:
            status = {"done": "done"}.get(pc.run.state, pc.run.state)
            reason = pc.run.detail
            if status in ("train", "overwrite", "resume", "evaluate"):
                status, reason = "planned", f"left to do: {pc.run.state}"
        for metric in cell.meta.get("metrics", ["nll"]):
            row = published_row(plan, cell, metric)
            measured = measured_value(pc.run.dir, metric) if pc.run is not None and status == "done" else None
            why = list(pc.not_comparable)
            if metric == "printed":
                why.append("the paper's units as printed are not the zoo's")
            if row is not None and row.provenance == pub.RECALLED:
                why_note = "published value recalled, unchecked"
            else:
                why_note = ""
            entry = {
                "cell": cell.name, "variant": cell.variant, "dataset": cell.dataset, "label": cell.label,
                "variant_label": cell.variant_label, "dataset_label": cell.dataset_label,
                "metric": metric, "metric_label": pub.METRICS.get(metric, metric),
                "published": None if row is None else row.value,
                "published_text": "—" if row is None else pub.format_value(row),
                "published_spread": None if row is None else row.spread,
                "published_source": None if row is None else f"{row.source}: {row.label} [{row.provenance}]",
                "measured": None if measured is None else measured[0],
                "se": None if measured is None else measured[1],
                "difference": (None if measured is None or row is None or metric == "printed"
                               else measured[0] - row.value),
                "comparable": not why and measured is not None,
            "measured_run": measured is not None,
                "not_comparable": why,
                "status": status, "reason": reason, "note": why_note,
                "data": pc.data, "samples": pc.samples,
                "run_dir": None if pc.run is None else pc.run.dir,
            }
            rows.append(entry)
    return rows


def _fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def _comparability(r: dict) -> str:
    if not r.get("measured_run", True):
        return "—"
    if r["comparable"]:
        return "comparable"
    if r["not_comparable"]:
        return "not comparable: " + "; ".join(r["not_comparable"])
    return ""


def _status_text(r: dict) -> str:
    if r["status"] == "done":
        return "measured"
    text = _STATUS_TEXT.get(r["status"], r["status"])
    return f"{text}: {r['reason']}" if r["reason"] else text


def write_report(plan: Plan, wall_seconds: Optional[float] = None) -> dict:
    from inference.atomic_write import write_json, write_text

    cf = plan.config
    rows = report_rows(plan)
    report = {
        "table": cf.name, "title": cf.table.get("title", cf.name), "config_file": cf.path,
        "config_sha256": cf.sha256, "budget": plan.budget, "data": plan.data, "substitute_data": plan.substitute,
        "rows": rows, "open_settings": cf.open_settings, "not_expressible": cf.not_expressible,
        "runs": [{"name": r.name, "dir": r.dir, "state": r.state, "detail": r.detail, "seconds": r.seconds,
                  "commands": [_quote(a) for a in (commands(r) if r.state != "done" else
                                                   [r.train_argv] + ([r.eval_argv] if r.eval_argv else []))]}
                 for r in plan.runs],
        "wall_seconds": wall_seconds, "threads": plan.threads,
    }
    os.makedirs(plan.out, exist_ok=True)
    write_json(os.path.join(plan.out, "report.json"), report)
    write_text(os.path.join(plan.out, "report.md"), markdown(report))
    write_text(os.path.join(plan.out, "index.html"), page(report))
    return report


def _header(report: dict) -> List[str]:
    lines = []
    if report["budget"] is not None:
        lines.append(f"Budget {report['budget']:g}: epochs, warm-up, patience and K scaled down; every measured cell "
                     f"is not comparable with the paper.")
    if report["substitute_data"]:
        lines.append(f"Every cell was run on {report['substitute_data']}, not on the paper's data set: not "
                     f"comparable.")
    lines.append(f"Settings: {report['config_file']} (SHA-256 {report['config_sha256'][:12]}).")
    if report["not_expressible"]:
        lines.append("Some of the paper's settings cannot be expressed by the zoo (listed below): a comparable row "
                     "still differs from the paper in those.")
    return lines


COLUMNS = ("cell", "metric", "published", "measured ± se", "difference", "comparable", "status")


def _cells(r: dict) -> List[str]:
    measured = "—" if r["measured"] is None else f"{r['measured']:.2f} ± {r['se']:.2f}"
    published = r["published_text"] + (f" ({r['note']})" if r["note"] else "")
    return [f"{r['label']} ({r['cell']})", r["metric_label"], published, measured, _fmt(r["difference"]),
            _comparability(r), _status_text(r)]


def markdown(report: dict) -> str:
    out = [f"# {report['title']}", ""] + _header(report) + [""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "---|" * len(COLUMNS))
    for r in report["rows"]:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    for title, key in (("Settings the paper leaves open (chosen here)", "open_settings"),
                       ("Settings the zoo cannot express (used instead)", "not_expressible")):
        if report[key]:
            out += ["", f"## {title}", ""] + [f"- **{k}**: {v}" for k, v in report[key].items()]
    out += ["", "## Runs", ""] + [f"- `{r['dir']}`: {r['state']}" + (f" ({r['detail']})" if r["detail"] else "")
                                  for r in report["runs"]]
    return "\n".join(out) + "\n"


def page(report: dict) -> str:
    e = html.escape
    body = [f"<h1>{e(report['title'])}</h1>"] + [f"<p>{e(line)}</p>" for line in _header(report)]
    body.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
    for r in report["rows"]:
        cls = "ok" if r["comparable"] else "nc"
        body.append(f"<tr class='{cls}'>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>")
    body.append("</table>")
    for title, key in (("Settings the paper leaves open (chosen here)", "open_settings"),
                       ("Settings the zoo cannot express (used instead)", "not_expressible")):
        if report[key]:
            body.append(f"<h2>{e(title)}</h2><ul>" + "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>"
                                                           for k, v in report[key].items()) + "</ul>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:4px 8px;font-size:90%}tr.nc td{color:#555}th{background:#eee}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report['title'])}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


# ------------------------------------------------------------------------------------------------------ command
def cmd_reproduce(args, out=None) -> int:
    from inference.run_lock import RunLock

    out = out or sys.stdout
    t0 = time.perf_counter()
    plan = make_plan(args)
    for run in plan.runs:
        run_state(run)
    cf = plan.config
    listed = [pc for pc in plan.cells if pc.status != "run"]
    if args.print_commands:
        for run in plan.runs:
            for argv in commands(run):
                print(_quote(argv), file=out)
        for pc in listed:
            print(f"# {pc.cell.name}: {pc.status}: {pc.reason}", file=out)
        for run in plan.runs:
            if run.state == "conflict":
                print(f"# {run.name}: not run: {run.detail}", file=out)
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with RunLock(plan.out, "zoo reproduce", create=True):
        failures = 0
        if not args.report_only:
            print(f"zoo reproduce {cf.name}: {len(plan.cells)} cells, {len(plan.runs)} runs "
                  f"({sum(r.state == 'done' for r in plan.runs)} done already), {len(listed)} listed without a run, "
                  f"in {plan.out}", file=out, flush=True)
            failures = execute(plan, out)
        report = write_report(plan, time.perf_counter() - t0)
    for pc in listed:
        print(f"  {pc.cell.name}: {pc.status}: {pc.reason}", file=out)
    done = sum(r["status"] == "done" for r in report["rows"])
    print(f"report: {os.path.join(plan.out, 'report.md')} and index.html ({done} of {len(report['rows'])} rows "
          f"measured, {time.perf_counter() - t0:.0f} s)", file=out)
    return 1 if failures else 0
