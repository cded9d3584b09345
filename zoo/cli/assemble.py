"""Config -> components: the one place that wires data, model, guide and objective together (docs/architecture.md, "Layers").

A run's ``config.json`` holds plain values only; :func:`build_components` rebuilds the exact model, guide, objective
and data of a run from it, and :func:`load_run` also loads its trained weights.
"""
import contextlib
import inspect
import os
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
    critic: Any = None  # adversarial objectives only (zoo/critics.py)


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
    if name not in ("cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {name} was asked for, but torch sees no CUDA device here; use --device cpu "
                              f"or auto")
        if name != "cuda" and int(name[5:]) >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA device{'s' if count > 1 else ''} "
                              f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    return torch.device(name)


def _parameters(factory) -> dict:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}


def model_options(model_name: str, options: dict, data, own_options: Optional[dict] = None) -> dict:
    """The options the model's factory accepts, with ``likelihood: auto`` resolved from the data.

    ``options`` are the CLI's general ones (``--latent-dim``, ``--hidden``, ...), kept where the factory takes them;
    ``own_options`` (``--model-option KEY=VALUE``) must all be taken, or the error names the ones that are not."""
    from guides.base import _is_program
    from zoo.model import MODELS

    entry = MODELS.entry(model_name)
    factory = entry.factory
    accepted = {} if entry.source != "registered" and _is_program(factory, "data_dim") else _parameters(factory)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in (own_options or {}) if k not in accepted and not takes_any]
    if unknown:
        takes = ", ".join(k for k, p in accepted.items() if k not in ("self", "data_dim", "image_shape")
                          and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)) or "none"
        from zoo.references import short_name

        raise ConfigError(f"model {short_name(model_name)!r} has no option {unknown[0]!r} (--model-option); its "
                          f"options: {takes}")
    # the CLI's general options (with their defaults) go to the zoo's own models; a user's class gets only what the
    # user gave it (--model-option), never a default meant for another model
    general = options if entry.source == "registered" else {}
    opts = {k: v for k, v in general.items() if k in accepted and v is not None}
    opts.update(own_options or {})
    if options.get("prior") not in (None, "standard") and "prior" not in accepted:
        takers = [e.name for e in MODELS if "prior" in inspect.signature(e.factory).parameters]
        raise ConfigError(f"model {model_name!r} has no swappable prior, so --prior {options['prior']} does not "
                          f"apply; models that take one: {', '.join(takers)}")
    if opts.get("likelihood") == "auto":
        opts["likelihood"] = "bernoulli" if data.is_binary else "gaussian"
    if "num_classes" in accepted and data.num_classes is not None:
        opts.setdefault("num_classes", data.num_classes)
    return opts


#: the CLI's general model options (flag -> the constructor argument it sets)
GENERAL_OPTIONS = {"--latent-dim": "latent_dim", "--latent-dim1": "latent_dim1", "--hidden": "hidden",
                   "--flow-depth": "flow_depth", "--num-scales": "num_scales", "--activation": "activation",
                   "--prior": "prior", "--sigma": "sigma", "--likelihood": "likelihood", "--alpha": "alpha",
                   "--m1-run": "m1_run"}


def check_general_options(model_name: str, given: dict):
    """Refuse the general options (``--flow-depth``, ``--alpha``, ...) that a user gave to a model that has no use
    for them, instead of ignoring them without a word; ``given`` maps their constructor names to the values given."""
    from guides.base import _is_program
    from zoo.model import MODELS
    from zoo.references import short_name

    register_all()  # also when --guide and --objective were given (then nothing has filled the registries yet)
    entry = MODELS.entry(model_name)
    flags = {v: k for k, v in GENERAL_OPTIONS.items()}
    if entry.source != "registered":  # a user's model gets only its own options
        if given:
            raise ConfigError(f"{flags[next(iter(given))]} does not apply to your model {short_name(model_name)!r}: give its "
                              f"constructor's own options with --model-option KEY=VALUE")
        return
    accepted = {} if _is_program(entry.factory, "data_dim") else _parameters(entry.factory)
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return
    if "prior" in given and "prior" not in accepted:  # said first: a model without a prior to swap
        model_options(model_name, {"prior": given["prior"]}, None)
    for key in given:
        if key not in accepted and key != "prior":
            takers = [e.name for e in MODELS if e.source == "registered" and key in _parameters(e.factory)]
            raise ConfigError(f"model {model_name!r} has no use for {flags[key]}; drop it"
                              + (f" (models that take it: {', '.join(takers)})" if takers else ""))


def load_data(config: dict, device):
    from zoo.data import load_dataset

    d = config["data"]
    return load_dataset(d["name"], binarize=d.get("binarize"), seed=config["train"]["seed"], root=d.get("root")).to(device)


def build_model(name: str, data, opts: dict):
    """The model ``name`` (registered, entry point or import reference) for ``data``: a zoo model class is called with
    (data_dim, image_shape=..., **opts); a user's class with the arguments among those its constructor names; a plain
    function is a Pyro model; an ``nn.Module`` that is not a :class:`~zoo.model.ZooModel` is wrapped as one
    (:class:`~zoo.model.TracedModel`)."""
    from torch import nn

    from guides.base import _is_program
    from zoo.model import MODELS, TracedModel, ZooModel
    from zoo.references import short_name
    from zoo.registry import parse_arg

    entry, arg = MODELS.lookup(name)
    factory = entry.factory
    label = short_name(entry.name)
    if isinstance(factory, nn.Module) or entry.source != "registered" and _is_program(factory, "data_dim"):
        model = factory  # a model object, or a Pyro model function
    else:
        params = _parameters(factory)
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        given = {"data_dim": data.dim, "image_shape": data.image_shape,
                 "sequence_shape": getattr(data, "sequence_shape", None),  # only to models that take them
                 "modalities": getattr(data, "modalities", None)}
        kwargs = {k: v for k, v in given.items() if k in params or takes_any}
        try:
            model = factory(*([] if arg is None else [parse_arg(arg)]), **kwargs, **opts)
        except TypeError as e:
            raise ConfigError(f"model {label!r} does not accept these options: {e}")
    if not isinstance(model, ZooModel):
        if not (callable(model)):
            raise ConfigError(f"model {label!r} is a {type(model).__name__}, not a Pyro model (a function "
                              f"model(x, y=None), an nn.Module whose forward is one, or a zoo model class)")
        model = TracedModel(model, data.dim, data.image_shape, name=label)
    if getattr(data, "sequence_shape", None) is not None and not getattr(model, "is_sequence_model", False):
        raise ConfigError(f"data set {data.name!r} holds sequences (N, T, D) = (N, {data.sequence_shape[0]}, "
                          f"{data.sequence_shape[1]}) with lengths, but model {label!r} reads flat vectors; choose a "
                          f"sequence model (lgssm, vrnn) or flat data (e.g. mnist5k for mnist5k-rows)")
    if getattr(data, "modalities", None) is not None and not getattr(model, "is_multimodal_model", False):
        raise ConfigError(f"data set {data.name!r} holds several modalities "
                          f"({', '.join(m.name for m in data.modalities)}) per point, some possibly missing, but "
                          f"model {label!r} reads one vector; choose a multimodal model (mvae) or one-modality data")
    return model


def build_components(config: dict, device: Optional[torch.device] = None, data=None, objects=None) -> Components:
    """Rebuild model, guide, objective and data from ``config``; ``objects`` may hand in ready-made ones by kind
    (``{"model": obj}``: the Python API's objects; the config then only records what they are)."""
    from guides.base import build_guide, check_guide_matches
    from guides.implicit import check_objective_fits
    from inference.objectives import build_objective

    register_all()
    objects = objects or {}
    device = device or resolve_device(config.get("device", "auto"))
    data = data if data is not None else load_data(config, device)
    name = config["model"]["name"]
    if "model" in objects:
        from zoo.model import TracedModel, ZooModel

        model = objects["model"]
        if not isinstance(model, ZooModel):
            model = TracedModel(model, data.dim, data.image_shape)
            objects["model"] = model  # the same wrapper (and its parameters) each time this process rebuilds the run
    else:
        opts = model_options(name, config["model"].get("options", {}), data, config["model"].get("own_options"))
        config["model"]["options"] = opts
        model = build_model(name, data, opts)
    model.to(device)
    example_x = data.valid.x[:64]
    example_y = None if data.valid.y is None else data.valid.y[:64]
    if not model.declares_latents():  # traced models find their latents before a guide is built for them
        model.prepare(example_x, example_y)
    guide = build_guide(objects.get("guide", config["guide"]), model, **config.get("guide_options", {}))
    objective = objects.get("objective") or build_objective(config["objective"])
    model.to(device)
    guide.to(device)
    check_objective_fits(guide, objective)  # an implicit guide (no log q) with an objective that needs log q
    critic = build_critic_for(model, guide, objective, data, config, objects)
    if critic is not None:
        critic.to(device)
    if not model.implicit:  # an implicit generator's noise is drawn from p(z) in training and sampling: no posterior
        check_guide_matches(model, guide, example_x, example_y)
    for part in model.modules():  # parts that start from the data (the VampPrior's pseudo-inputs: training points)
        if hasattr(part, "init_from_data"):
            part.init_from_data(data.train.x)
    if model.declares_latents():  # pyro.params of a hand-declared model (its guide bound first: the VampPrior)
        model.prepare(example_x, example_y)
    return Components(model, guide, objective, data, device, config, critic)


def build_critic_for(model, guide, objective, data, config: dict, objects=None):
    """The critic of an adversarial objective (``config["train"]["critic"]``, default by the data's shape), after
    checking that model and objective fit: a likelihood objective refuses an implicit model, an adversarial one a
    model it cannot sample differentiably. None for likelihood objectives."""
    from inference.adversarial import is_adversarial
    from zoo.critics import build_critic, default_critic

    spec = config.get("train", {}).get("critic")
    if not is_adversarial(objective):
        if model.implicit:
            from inference.objectives import OBJECTIVES

            adversarial = ", ".join(e.name + (f":{e.arg}" if e.arg and not e.meta.get("optional_arg") else "")
                                    for e in OBJECTIVES if e.meta.get("samples_only"))
            raise ConfigError(f"objective {objective.spec()} needs the density log p(x | ...), but model "
                              f"{model.display_name()} is an implicit generator (x = G(z), no density); train it with "
                              f"an adversarial objective: {adversarial}")
        if spec:
            raise ConfigError(f"--critic {spec} is for adversarial objectives; objective {objective.spec()} has no "
                              f"critic: drop it")
        return None
    objective.check(model, guide, data.valid.x[:2])
    if objects and "critic" in objects:
        return objects["critic"]
    space = getattr(objective, "critic_space", "data")
    if space == "data":
        return build_critic(spec or default_critic(data.image_shape), data.dim, data.image_shape)
    dim = objective.critic_input_dim(model, data)  # latents (AAE) or (x, z) pairs (AVB): flat vectors
    return build_critic(spec or "mlp", dim, None)


@contextlib.contextmanager
def code_of_run(run_dir: str):
    """Say which run needs the code that can no longer be imported (a user's model, guide, ... by reference)."""
    try:
        yield
    except ConfigError as e:
        if str(e).startswith("cannot import") or "<python object" in str(e):
            raise RunDirError(f"the run in {run_dir} was made with code that cannot be imported now ({e}); restore "
                              f"that file or module, or start the run again")
        raise


def load_run(run_dir: str, device: Optional[torch.device] = None, which: str = "best") -> Components:
    """Rebuild a run from its directory and load its ``best.pt`` (or ``checkpoint.pt``) weights."""
    from inference import checkpoint as ckpt
    from inference import run_dir as rd

    from zoo.api import _LIVE_OBJECTS

    config = rd.read_config(run_dir)
    with code_of_run(run_dir):
        comps = build_components(config, device or resolve_device("auto"),
                                 objects=_LIVE_OBJECTS.get(os.path.abspath(run_dir)))
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
