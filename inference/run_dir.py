"""The run directory: config.json, metrics.jsonl, checkpoint.pt (resume), best.pt (best validation), eval.json and
eval_points.pt (one evaluation), run.lock (held by the process that writes it, :mod:`inference.run_lock`).

Every file is written whole through :mod:`inference.atomic_write` (``metrics.jsonl`` too: it is rewritten, not
appended, so a kill never leaves half a line); every file read may be damaged, and each reader says which file and
how in one line (:class:`~zoo.errors.RunDirError`).
"""
import json
import math
import os

from inference.atomic_write import write_json, write_text
from zoo.errors import RunDirError

CONFIG, METRICS, CHECKPOINT, BEST, EVAL, EVAL_POINTS, LOCK = (
    "config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "eval.json", "eval_points.pt", "run.lock")
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, BEST, EVAL, EVAL_POINTS, "samples.png")  # what --overwrite removes


def path(run_dir, name):
    return os.path.join(run_dir, name)


def write_json_atomic(obj, file_path):
    write_json(file_path, obj)


def is_run(run_dir) -> bool:
    """Whether ``run_dir`` holds (part of) a run: any of the files a run writes."""
    return os.path.isdir(run_dir) and any(os.path.exists(path(run_dir, f)) for f in RUN_FILES)


def read_json(file_path: str, what: str):
    """The JSON value in ``file_path``; a missing, empty or damaged file is one line naming it."""
    try:
        with open(file_path, "rb") as f:
            raw = f.read()
        return json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{file_path} is missing ({what})") from None
    except OSError as e:
        raise RunDirError(f"cannot read {file_path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        why = "it is empty" if not raw.strip() else f"it is not valid JSON ({str(e).splitlines()[0]})"
        raise RunDirError(f"{file_path} is damaged: {why}; {what}") from None


def _check_config(config, p: str):
    """config.json must hold what every command reads from it: say which part is missing instead of a KeyError."""
    def bad(what):
        raise RunDirError(f"{p} is damaged: {what}; it is not the config.json `zoo train` writes (restore it, or "
                          f"train the run again with --overwrite)")

    if not isinstance(config, dict):
        bad(f"it holds a JSON {type(config).__name__}, not an object")
    for key, kind in (("model", dict), ("data", dict), ("train", dict), ("guide", str), ("objective", str)):
        if key not in config:
            bad(f"no {key!r} entry")
        if not isinstance(config[key], kind):
            bad(f"its {key!r} entry is a {type(config[key]).__name__}, not a{'n object' if kind is dict else ' name'}")
    for section, key in (("model", "name"), ("data", "name")):
        if not isinstance(config[section].get(key), str):
            bad(f"no {section} name")
    if not isinstance(config["model"].get("options", {}), dict):
        bad("the model options are not an object")
    from inference.training import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    unknown = [k for k in config["train"] if k not in known]
    if unknown:
        bad(f"unknown training setting {unknown[0]!r}")


def read_config(run_dir) -> dict:
    p = path(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not os.path.exists(p):
        raise RunDirError(f"{run_dir} is not a zoo run directory (no {CONFIG}); create one with `zoo train --out {run_dir}`")
    config = read_json(p, "the run's configuration")
    _check_config(config, p)
    return config


def _check_row(row, p: str, number: int):
    if not isinstance(row, dict) or not isinstance(row.get("epoch"), int) or not all(
            isinstance(row.get(k), (int, float)) for k in ("train_loss", "valid_loss")):
        raise RunDirError(f"{p} is damaged: line {number} is not a metrics row (epoch, train_loss, valid_loss)")


def read_metrics(run_dir) -> list:
    """The rows of metrics.jsonl, one per finished epoch; a damaged line is one error naming the file and line."""
    p = path(run_dir, METRICS)
    if not os.path.exists(p):
        return []
    try:
        with open(p, "rb") as f:
            lines = f.read().decode("utf-8").splitlines()
    except OSError as e:
        raise RunDirError(f"cannot read {p}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise RunDirError(f"{p} is damaged: it is not text") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise RunDirError(f"{p} is damaged: line {number} is not JSON ({line[:40]!r})") from None
        _check_row(row, p, number)
        rows.append(row)
    return rows


def _jsonable(value):
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)


def write_metrics(run_dir, rows: list):
    """Replace metrics.jsonl by ``rows`` in one atomic write."""
    text = "".join(json.dumps({k: _jsonable(v) for k, v in r.items()}) + "\n" for r in rows)
    write_text(path(run_dir, METRICS), text)


def truncate_metrics(run_dir, before_epoch: int):
    """Keep the lines of epochs < before_epoch (a resumed run rewrites the later ones)."""
    write_metrics(run_dir, [r for r in read_metrics(run_dir) if r["epoch"] < before_epoch])


def append_metrics(run_dir, row: dict):
    """Add one epoch's row: the file is rewritten whole (it holds one short line per epoch), so a kill leaves the old
    or the new file, never a partial line."""
    write_metrics(run_dir, read_metrics(run_dir) + [row])
