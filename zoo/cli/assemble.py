"""Config -> components: the one place that wires data, model, guide and objective together (DESIGN.md, "cli").

A run's ``config.json`` holds plain values only; :func:`build_components` rebuilds the exact model, guide, objective
and data of a run from it, and :func:`load_run` also loads its trained weights.
"""
import inspect
from dataclasses import dataclass
from typing import Any, Optional

import torch

from zoo.errors import ConfigError, RunDirError

VERSION = "0.1.0"


@dataclass
class Components:
    model: Any
    guide: Any
    objective: Any
    data: Any
    device: torch.device
    config: dict


def register_all():
    """Import every module of the component packages, so that each registry holds everything registered by
    decorator (no hand-kept list: a new module registers itself by being there)."""
    import importlib
    import pkgutil

    for package_name in ("zoo", "guides", "inference"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            if info.name.startswith("zoo.cli") or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def model_options(model_name: str, options: dict, data) -> dict:
    """The options the model's factory accepts, with ``likelihood: auto`` resolved from the data."""
    from zoo.model import MODELS

    factory = MODELS.entry(model_name).factory
    accepted = inspect.signature(factory).parameters
    opts = {k: v for k, v in options.items() if k in accepted and v is not None}
    if options.get("prior") not in (None, "standard") and "prior" not in accepted:
        takers = [e.name for e in MODELS if "prior" in inspect.signature(e.factory).parameters]
        raise ConfigError(f"model {model_name!r} has no swappable prior, so --prior {options['prior']} does not "
                          f"apply; models that take one: {', '.join(takers)}")
    if opts.get("likelihood") == "auto":
        opts["likelihood"] = "bernoulli" if data.is_binary else "gaussian"
    if "num_classes" in accepted and data.num_classes is not None:
        opts.setdefault("num_classes", data.num_classes)
    return opts


def load_data(config: dict, device):
    from zoo.data import load_dataset

    d = config["data"]
    return load_dataset(d["name"], binarize=d.get("binarize"), seed=config["train"]["seed"], root=d.get("root")).to(device)


def build_components(config: dict, device: Optional[torch.device] = None, data=None) -> Components:
    from guides.base import build_guide
    from inference.objectives import build_objective
    from zoo.model import MODELS

    register_all()
    device = device or resolve_device(config.get("device", "auto"))
    data = data if data is not None else load_data(config, device)
    name = config["model"]["name"]
    opts = model_options(name, config["model"].get("options", {}), data)
    config["model"]["options"] = opts
    try:
        model = MODELS.build(name, data.dim, image_shape=data.image_shape, **opts)
    except TypeError as e:
        raise ConfigError(f"model {name!r} does not accept these options: {e}")
    guide = build_guide(config["guide"], model, **config.get("guide_options", {}))
    objective = build_objective(config["objective"])
    model.to(device)
    guide.to(device)
    for part in model.modules():  # parts that start from the data (the VampPrior's pseudo-inputs: training points)
        if hasattr(part, "init_from_data"):
            part.init_from_data(data.train.x)
    return Components(model, guide, objective, data, device, config)


def load_run(run_dir: str, device: Optional[torch.device] = None, which: str = "best") -> Components:
    """Rebuild a run from its directory and load its ``best.pt`` (or ``checkpoint.pt``) weights."""
    from inference import checkpoint as ckpt
    from inference import run_dir as rd

    config = rd.read_config(run_dir)
    comps = build_components(config, device or resolve_device("auto"))
    state = ckpt.load(rd.path(run_dir, rd.BEST if which == "best" else rd.CHECKPOINT),
                      expected_model=config["model"]["name"], map_location=comps.device)
    try:
        comps.model.load_state_dict(state["model"])
        comps.guide.load_state_dict(state["guide"])
    except RuntimeError as e:
        raise RunDirError(f"the weights in {run_dir} do not fit the model its config.json describes: "
                          f"{str(e).splitlines()[0]}")
    comps.model.eval()
    comps.guide.eval()
    return comps
