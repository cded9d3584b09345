"""Atomic, pickle-free checkpoints: tensors and plain config only, loaded with ``weights_only=True``."""
import os
import pickle
import zipfile

import torch

from inference.atomic_write import write_atomic
from zoo.errors import RunDirError

FORMAT = "zoo-checkpoint-1"


def save_atomic(obj: dict, path: str):
    """Write ``obj`` to ``path`` through :func:`inference.atomic_write.write_atomic`: a crash or a full disk leaves the
    previous file (the error names the file and says so)."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def _why_unreadable(path: str, error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in words; never torch's advice to retry with
    ``weights_only=False`` (which would run whatever code the file holds)."""
    if os.path.getsize(path) == 0:
        return "it is empty (0 bytes; a write that never finished?)"
    text = str(error)
    if "Unsupported global" in text or "GLOBAL" in text:
        return ("it holds Python objects other than tensors and plain values, so it is not a zoo checkpoint and may be "
                "unsafe; it was not unpickled")
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text:
        return "it is damaged or not a zoo checkpoint (another kind of file); it was not unpickled"
    if isinstance(error, (zipfile.BadZipFile, EOFError)) or "zip archive" in text or "central directory" in text:
        return "it is truncated or damaged"
    first = text.splitlines()[0] if text else ""
    return f"it is damaged or not a checkpoint ({type(error).__name__}{': ' + first if first else ''})"


def load(path: str, expected_model: str = None, map_location="cpu") -> dict:
    """Load a checkpoint safely; refuse files that are not zoo checkpoints or that belong to another model."""
    if not os.path.exists(path):
        raise RunDirError(f"no checkpoint at {path}; train a model there first with `zoo train --out ...`")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a user-facing error
        raise RunDirError(f"cannot read {path}: {_why_unreadable(path, e)}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RunDirError(f"{path} is not a zoo checkpoint (format {obj.get('format') if isinstance(obj, dict) else '?'})")
    if expected_model is not None and obj.get("model_name") != expected_model:
        raise RunDirError(f"{path} holds a {obj.get('model_name')!r} model, not {expected_model!r}; "
                          "point to the run directory of that model or start a new one")
    return obj


def load_tensors(path: str, map_location="cpu") -> dict:
    """A dict of tensors and plain values written by :func:`save_atomic` (``eval_points.pt``), read with
    ``weights_only=True``; a damaged file is a :class:`RunDirError` in one line."""
    if not os.path.exists(path):
        raise RunDirError(f"no file at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise RunDirError(f"cannot read {path}: {_why_unreadable(path, e)}") from None
    if not isinstance(obj, dict):
        raise RunDirError(f"cannot read {path}: it holds a {type(obj).__name__}, not the zoo's dict of tensors")
    return obj
