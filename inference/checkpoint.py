"""Atomic, pickle-free checkpoints: tensors and plain config only, loaded with ``weights_only=True``."""
import os
import tempfile

import torch

from zoo.errors import RunDirError

FORMAT = "zoo-checkpoint-1"


def save_atomic(obj: dict, path: str):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: a crash leaves the old file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str, expected_model: str = None, map_location="cpu") -> dict:
    """Load a checkpoint safely; refuse files that are not zoo checkpoints or that belong to another model."""
    if not os.path.exists(path):
        raise RunDirError(f"no checkpoint at {path}; train a model there first with `zoo train --out ...`")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a user-facing error
        raise RunDirError(f"{path} is not a readable zoo checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RunDirError(f"{path} is not a zoo checkpoint (format {obj.get('format') if isinstance(obj, dict) else '?'})")
    if expected_model is not None and obj.get("model_name") != expected_model:
        raise RunDirError(f"{path} holds a {obj.get('model_name')!r} model, not {expected_model!r}; "
                          "point to the run directory of that model or start a new one")
    return obj
