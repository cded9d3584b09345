"""What produced a measurement: eval.json's ``provenance`` block.

``evaluation_provenance(comps)`` names the data (registry name, binarization, the SHA-256 of the files the loader read
and a SHA-256 of the splits as the model saw them), the code (the zoo's version and, when it runs from a git checkout,
the commit and whether the work tree had uncommitted changes) and the machine (torch, Pyro, Python, the device and the
CPU's model name). Every part is best effort: a missing ``git`` or ``lscpu`` gives None / a fallback, never an error.
"""
import functools
import hashlib
import os
import platform
import subprocess
from typing import Optional

import torch

SPLITS = ("train", "valid", "test")


@functools.lru_cache(maxsize=None)
def cpu_name() -> str:
    """The CPU's model name: ``lscpu``'s "Model name", else /proc/cpuinfo's "model name", else platform.processor()."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def zoo_version() -> str:
    """The installed package's version (pyro-zoo), else the version the code declares."""
    from importlib import metadata

    try:
        return metadata.version("pyro-zoo")
    except metadata.PackageNotFoundError:
        from zoo.cli.assemble import VERSION

        return VERSION


def _git(args, cwd) -> Optional[str]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index lock another git command may need
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(source_dir: Optional[str] = None) -> dict:
    """``{"commit": short hash, "dirty": bool}`` when the zoo's code runs from a git checkout (its top level holds the
    ``zoo`` package), else ``{"commit": None, "dirty": None}``. ``dirty``: tracked files differ from the commit."""
    here = source_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    none = {"commit": None, "dirty": None}
    out = _git(["rev-parse", "--show-toplevel", "HEAD"], here)
    if not out or len(out.split()) != 2:
        return none
    top, commit = out.split()
    if os.path.realpath(top) != os.path.realpath(here):  # an installed copy inside some other repository
        return none
    status = _git(["status", "--porcelain", "--untracked-files=no"], here)
    return {"commit": commit[:12], "dirty": None if status is None else bool(status.strip())}


def tensor_digest(data) -> str:
    """SHA-256 over every split's x (and y, lengths) as the model sees them (valid/test after their fixed
    binarization); cached on the data set object, so a second call costs nothing."""
    cached = getattr(data, "_provenance_sha256", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    for name in SPLITS:
        split = getattr(data, name)
        for part, t in (("x", split.x), ("y", split.y), ("lengths", getattr(split, "lengths", None))):
            if t is None:
                continue
            t = t.detach().to("cpu").contiguous()
            h.update(f"{name}.{part}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    digest = h.hexdigest()
    try:
        object.__setattr__(data, "_provenance_sha256", digest)
    except (AttributeError, TypeError):  # a user's object that takes no new attributes
        pass
    return digest


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def data_provenance(data, config: Optional[dict] = None) -> dict:
    """The data set's name, binarization, file checksums (as its loader recorded them) and the splits' SHA-256;
    ``same_files_as_training`` compares the files with those config.json recorded at training (None: not known)."""
    info = getattr(data, "info", None) or {}
    config_data = (config or {}).get("data") or {}
    files = info.get("files")
    trained_on = (config_data.get("info") or {}).get("files")
    return {"name": config_data.get("name", getattr(data, "name", None)),
            "binarize": getattr(data, "binarize", None),
            "files": files,
            "checksum": info.get("checksum"),
            "sha256": tensor_digest(data),
            "same_files_as_training": None if files is None or trained_on is None else files == trained_on}


def environment(device) -> dict:
    """The code and the machine: zoo version and commit, torch, Pyro, Python, device, CPU."""
    import pyro

    git = git_state()
    return {"zoo_version": zoo_version(), "git_commit": git["commit"], "git_dirty": git["dirty"],
            "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version(),
            "device": device_name(device), "cpu": cpu_name()}


def evaluation_provenance(comps) -> dict:
    """eval.json's ``provenance``: :func:`data_provenance` under ``data`` beside :func:`environment`."""
    return {"data": data_provenance(comps.data, getattr(comps, "config", None)), **environment(comps.device)}
