"""The Python API, the mirror of the ``zoo`` command: ``zoo.train``, ``zoo.evaluate``, ``zoo.report``, ``zoo.load``.

Wherever a component goes, a name (``"diagonal"``, ``"iwae:5"``), an import reference (``"my_models:LaplaceVAE"``,
``"path/to/file.py:model"``) or the object itself (a class, a Pyro model or guide function, an objective) is
accepted. The run directory is the one ``zoo train`` writes, so CLI and Python runs mix in one report, and ``zoo
evaluate``/``report``/``train --resume`` work on runs made here.

Objects are recorded in ``config.json`` by their import reference (a module-level class or function; one defined in
a script is named by the script's path), so the run can be rebuilt by another process. An object without one (an
``nn.Module`` instance, a lambda) is used as it is in this process, and its run can be evaluated and reported here;
another process cannot rebuild it and says so.

    import zoo
    run = zoo.train(my_model, guide="iaf:2", objective="iwae:5", data="mnist5k", out="runs/mine", epochs=20)
    zoo.evaluate(run, samples=1000)
    zoo.report([run, "runs/vae"], out="report")
"""
import os
from dataclasses import fields
from typing import Any, Dict, List, Optional, Union

from torch import nn

from zoo.errors import ConfigError

#: objects given to zoo.train that no import reference names, by absolute run directory (this process only)
_LIVE_OBJECTS: Dict[str, dict] = {}

_GENERAL_MODEL_OPTIONS = ("latent_dim", "latent_dim1", "hidden", "likelihood", "prior", "sigma", "activation",
                          "flow_depth", "num_scales", "alpha", "m1_run")


class Run:
    """A run directory: its config, metrics and evaluation, and (loaded on first use) its trained components."""

    def __init__(self, run_dir: str):
        self.dir = os.path.abspath(run_dir)
        self._components = None

    def __fspath__(self):
        return self.dir

    def __repr__(self):
        return f"Run({self.dir!r})"

    @property
    def config(self) -> dict:
        from inference import run_dir as rd

        return rd.read_config(self.dir)

    @property
    def metrics(self) -> list:
        from inference import run_dir as rd

        return rd.read_metrics(self.dir)

    @property
    def evaluation(self) -> Optional[dict]:
        from zoo.cli.runs import read_eval

        return read_eval(self.dir)

    def components(self, device: str = "auto"):
        """The model, guide, objective and data with the best validation weights (:class:`zoo.cli.assemble.Components`)."""
        if self._components is None:
            from zoo.cli.assemble import load_run, resolve_device

            self._components = load_run(self.dir, resolve_device(device))
        return self._components

    @property
    def model(self):
        return self.components().model

    @property
    def guide(self):
        return self.components().guide


def _spec(kind: str, value, objects: dict):
    """A component as config.json records it; an object without an import reference is kept in ``objects``."""
    from zoo.references import canonical, reference_of

    if value is None or isinstance(value, str):
        return None if value is None else canonical(value)
    ref = None if isinstance(value, nn.Module) else reference_of(value)
    if ref is not None:
        return ref
    objects[kind] = value
    owner = reference_of(type(value)) if isinstance(value, nn.Module) else None
    return f"<python object{': ' + owner if owner else ''}>"


def train(model: Any = "vae", guide: Any = None, objective: Any = None, data: Union[str, Any] = "mnist5k",
          out: Optional[str] = None, *, model_options: Optional[dict] = None, guide_options: Optional[dict] = None,
          binarize: Optional[str] = None, data_root: Optional[str] = None, labels: Optional[int] = None,
          device: str = "auto", resume: bool = False, overwrite: bool = False, progress: bool = True,
          **options) -> Run:
    """Train ``model`` with ``guide`` and ``objective`` on ``data`` into the run directory ``out``; returns the
    :class:`Run`. ``options`` are training settings (epochs, batch_size, lr, seed, beta, warmup, patience,
    checkpoint_every, precision) and the zoo's general model options (latent_dim, hidden, likelihood, prior, ...,
    used where the model takes them); ``model_options`` are the model constructor's own (all must be taken).
    ``out`` that already holds a run is refused unless ``resume=True`` (continue it; ``epochs=N`` extends it) or
    ``overwrite=True`` (replace it)."""
    from inference.training import TrainConfig
    from zoo.cli.assemble import register_all
    from zoo.cli.runs import make_config, train_run
    from zoo.cli.semi_supervised import model_default

    if resume:
        if out is None:
            raise ConfigError("zoo.train(resume=True) needs out=<the run directory to continue>")
        from inference import run_dir as rd
        from zoo.cli.assemble import code_of_run

        extra = [k for k in options if k != "epochs"]
        if extra:
            raise ConfigError(f"zoo.train(resume=True) continues {out} as it was configured; {extra[0]}= cannot "
                              f"change (only epochs= extends it)")
        config = rd.read_config(out)
        if "epochs" in options:
            from zoo.cli.main import _extend

            _extend(config, out, int(options["epochs"]))
        live = _LIVE_OBJECTS.get(os.path.abspath(out))
        with code_of_run(out):
            train_run(config, out, resume=True, progress=progress, objects=live)
        return Run(out)
    register_all()
    train_names = {f.name for f in fields(TrainConfig)}
    unknown = [k for k in options if k not in train_names and k not in _GENERAL_MODEL_OPTIONS]
    if unknown:
        shown = sorted(train_names - {"progress", "validate", "precision_reason"})
        raise ConfigError(f"zoo.train got an unknown option {unknown[0]!r}; training options: "
                          f"{', '.join(shown)}; model options: "
                          f"{', '.join(_GENERAL_MODEL_OPTIONS)} (a model's own: model_options={{...}})")
    objects: dict = {}
    model_spec = _spec("model", model, objects)
    named = isinstance(model_spec, str) and not model_spec.startswith("<")
    guide_spec = _spec("guide", guide, objects) or (model_default(model_spec, "guide", "diagonal") if named
                                                    else "diagonal")
    objective_spec = _spec("objective", objective, objects) or (model_default(model_spec, "objective", "elbo")
                                                                if named else "elbo")
    data_spec = _spec("data", data, objects)
    if "data" in objects:
        raise ConfigError("zoo.train(data=...) takes a data set's name, an .npz path or a reference "
                          "(module:function / file.py:function returning the arrays), so the run can be rebuilt")
    train_cfg = TrainConfig(**{k: v for k, v in options.items() if k in train_names}, progress=progress)
    general = {k: options.get(k) for k in _GENERAL_MODEL_OPTIONS}
    general["likelihood"] = general["likelihood"] or "auto"
    general["prior"] = general["prior"] or "standard"
    if named and binarize is None:
        binarize = model_default(model_spec, "binarize", None)
    config = make_config(model_spec, guide_spec, objective_spec, data_spec, binarize, general, train_cfg,
                         device=device, root=data_root)
    if model_options:
        config["model"]["own_options"] = dict(model_options)
    config["guide_options"] = dict(guide_options or {})
    if labels:
        config["data"]["labels"] = labels
        config["data"]["label_repeat"] = model_default(model_spec, "label_repeat", 1) if named else 1
    out = out or os.path.join("runs", "-".join(str(s).split(":")[-1].strip("<>") for s in (model_spec, guide_spec)))
    if objects:
        _LIVE_OBJECTS[os.path.abspath(out)] = objects
    train_run(config, out, progress=progress, objects=objects or None, overwrite=overwrite)
    return Run(out)


def load(run_dir: Union[str, Run]) -> Run:
    """The run in ``run_dir`` (its trained model and guide load on first use of ``.model`` / ``.guide``)."""
    from inference import run_dir as rd

    run = run_dir if isinstance(run_dir, Run) else Run(str(run_dir))
    rd.read_config(run.dir)  # a missing or damaged run says so now
    return run


def evaluate(run: Union[str, Run], samples: int = 5000, split: str = "test", batch_size: int = 100,
             device: str = "auto", precision: str = "auto", progress: bool = True, estimator: str = "is",
             chains: int = 16, leapfrog: int = 10, bdmc: int = 0, quality_samples: Optional[int] = None,
             inference_gap: int = 0, inference_gap_family: str = "guide", inference_gap_steps: int = 500,
             observation_sigma="auto") -> dict:
    """Evaluate a run with the zoo's protocol (as ``zoo evaluate``); writes and returns its eval.json content.
    ``estimator="ais:T"`` adds annealed importance sampling (``chains``, ``leapfrog``; ``bdmc=N`` simulated points
    for bidirectional Monte Carlo), as ``zoo evaluate --estimator ais:T``. ``quality_samples=N`` samples for the
    sample-quality metrics (``sample_quality`` in the result; 0 skips them; default 2000 or $ZOO_QUALITY_SAMPLES), as
    ``--quality-samples N``. ``inference_gap=N`` splits the inference gap on the first N points (local q of
    ``inference_gap_family`` fitted with ``inference_gap_steps`` Adam steps), as ``--inference-gap N``.
    ``observation_sigma`` (``auto`` or a number): an implicit generator's Gaussian observation noise for AIS, as
    ``--observation-sigma``."""
    from inference.ais import parse_estimator
    from zoo.cli.runs import evaluate_run

    steps = parse_estimator(estimator)
    if bdmc and steps is None:
        raise ConfigError("zoo.evaluate(bdmc=N) runs forward and reverse AIS: give estimator='ais:T' as well")
    from inference.implicit_likelihood import parse_sigma

    sigma = parse_sigma(observation_sigma)
    ais = None if steps is None else {"steps": steps, "chains": chains, "leapfrog": leapfrog, "bdmc": bdmc,
                                      "observation_sigma": sigma}
    gap = {"points": inference_gap, "family": inference_gap_family, "steps": inference_gap_steps} if inference_gap \
        else None
    return evaluate_run(os.fspath(run), samples, split, batch_size, device, progress=progress, precision=precision,
                        ais=ais, quality_samples=quality_samples, inference_gap=gap)


def report(runs: List[Union[str, Run]], out: str = "report", samples: int = 5000, title: Optional[str] = None,
           device: str = "auto", progress: bool = True):
    """One report for ``runs`` (as ``zoo report``); returns the report with ``html_path`` and ``md_path``."""
    from reports.report import build_report

    return build_report([os.fspath(r) for r in runs], out, samples=samples, title=title, device=device,
                        progress=progress)
