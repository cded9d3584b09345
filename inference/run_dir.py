"""The run directory: config.json, metrics.jsonl, checkpoint.pt (resume), best.pt (best validation), eval.json."""
import json
import os

from zoo.errors import RunDirError

CONFIG, METRICS, CHECKPOINT, BEST, EVAL, EVAL_POINTS = (
    "config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "eval.json", "eval_points.pt")


def path(run_dir, name):
    return os.path.join(run_dir, name)


def write_json_atomic(obj, file_path):
    tmp = file_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file_path)


def read_config(run_dir) -> dict:
    p = path(run_dir, CONFIG)
    if not os.path.isdir(run_dir):
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not os.path.exists(p):
        raise RunDirError(f"{run_dir} is not a zoo run directory (no {CONFIG}); create one with `zoo train --out {run_dir}`")
    try:
        with open(p) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise RunDirError(f"{p} is not valid JSON ({e})")


def read_metrics(run_dir) -> list:
    p = path(run_dir, METRICS)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(run_dir, before_epoch: int):
    """Keep the lines of epochs < before_epoch (a resumed run rewrites the later ones)."""
    rows = [r for r in read_metrics(run_dir) if r["epoch"] < before_epoch]
    p = path(run_dir, METRICS)
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, p)


def append_metrics(run_dir, row: dict):
    with open(path(run_dir, METRICS), "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
