"""Configurations as data: an experiment's settings in a TOML file, read with the standard library's ``tomllib``.

A file holds ``zoo train``'s options by their long names (``--batch-size`` -> ``batch_size``) and, for a paper's
table, the table's cells. The packaged files (``zoo/configs/*.toml``: ``vampprior``, ``sylvester``, ``iwae``, ``m2``)
hold what each paper used, with the settings it leaves open and those the zoo cannot express listed::

    [table]            name, title, published (the cite key of reports/published.py), metrics
    [run]              options of every cell (model, latent_dim, hidden, lr, batch_size, epochs, warmup, ...)
    [evaluate]         samples (K), batch_size, quality_samples: the evaluation protocol
    [datasets.KEY]     the options of one data set of the table (data, binarize, labels, ...) and its label, files
    [variants.KEY]     the options of one column (model, guide, prior, objective, ...) and its label
    [stages.KEY]       a helper run some cells need (m2.toml: the M1 that M1+M2 models, ``m1_run = "@m1"``)
    [open_settings]    what the paper leaves open and what was chosen (text)
    [not_expressible]  what the paper did that the zoo's options cannot say, and what is used instead (text)

A cell is a variant crossed with a data set, named ``VARIANT@DATASET``; settings merge ``[run]`` < ``[datasets.X]`` <
``[variants.Y]`` < command-line flags. A file without variants and data sets is one run (its ``[run]``). Besides
options, an entry may hold: ``label``, ``files`` (what to place for its data), ``metrics``, ``evaluate`` (a table like
``[evaluate]``), ``runnable = false`` with a ``reason``, ``needs_gpu``, ``match`` (settings that find its published
row when they differ from the run's) and, in a variant, ``datasets`` (the data sets it is crossed with).

The data set's own keys (``binarize``, ``data_root``) belong to that data set: when ``--data`` replaces it they are
dropped (``zoo train --config vampprior.toml --cell vae-vamp@static-mnist --data mnist5k`` uses mnist5k's default
binarization).

Every mistake is one :class:`~zoo.errors.ConfigError` line naming the file: a file that does not parse (tomllib's
message with line and column), an unknown table or key (the valid ones listed), a key the cell's model does not take,
a value of the wrong kind.
"""
import argparse
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from zoo.errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

SECTIONS = ("table", "run", "evaluate", "datasets", "variants", "stages", "open_settings", "not_expressible")
TABLE_KEYS = ("name", "title", "published", "metrics")
EVALUATE_KEYS = ("samples", "batch_size", "quality_samples")
ENTRY_KEYS = ("label", "files", "metrics", "evaluate", "runnable", "reason", "needs_gpu", "match")
VARIANT_KEYS = ENTRY_KEYS + ("datasets",)
#: zoo train options a file cannot set (they say how to run the command, not what the experiment is)
NOT_IN_FILES = ("config", "cell", "resume", "overwrite", "distributed", "no_progress", "help")
#: options that belong to a data set entry and are dropped when --data replaces it
DATA_BOUND = ("binarize", "data_root")
#: the published metrics a cell may report (reports/published.py METRICS)
METRICS = ("nll", "neg_elbo", "bits_per_dim", "neg_elbo_bits_per_dim", "test_error", "printed")


def packaged(name: str) -> str:
    """The path of a packaged configuration file (``vampprior`` -> .../zoo/configs/vampprior.toml)."""
    return os.path.join(CONFIG_DIR, name if name.endswith(".toml") else name + ".toml")


def packaged_names() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".toml"))


# ------------------------------------------------------------------------------------------------------ options
def train_actions() -> Dict[str, argparse.Action]:
    """dest -> argparse action of ``zoo train``'s options that a file may set."""
    from zoo.cli.main import build_parser

    return {a.dest: a for a in _train_parser(build_parser())._actions
            if a.option_strings and a.dest not in NOT_IN_FILES}


def _train_parser(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["train"]
    raise RuntimeError("zoo's parser has no train command")


def explicit_train_options(argv) -> set:
    """The ``zoo train`` options given on the command line ``argv`` (dest names), whatever their values: the
    parser is run again with every default suppressed, so an option given with its default value counts too."""
    from zoo.cli.main import build_parser

    parser = build_parser()
    for action in _train_parser(parser)._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv)))) - {"command"}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def convert(action: argparse.Action, key: str, value, where: str):
    """A TOML value as the argparse ``action`` would have parsed it from the command line."""
    def bad(why):
        raise ConfigError(f"{where}: {key} = {value!r}: {why}")

    if isinstance(action, argparse._AppendAction):  # --model-option / --guide-option: a TOML table KEY = VALUE
        if not isinstance(value, dict):
            bad(f"expected a table like {{ name = value }} (the options of {_flag(key)})")
        return [(str(k), list(v) if isinstance(v, list) else v) for k, v in value.items()]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            bad("expected true or false")
        return value
    if isinstance(value, dict):
        bad("expected a value, not a table")
    if isinstance(value, bool):
        bad("expected a value, not true/false")
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if action.type is not None:
        try:
            text = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            bad(str(e))
    if action.choices is not None and text not in action.choices:
        bad(f"choose one of {', '.join(map(str, action.choices))}")
    return text


def jsonable(value):
    """A converted option value as config.json records it (tuples as lists, KEY=VALUE pairs as a table)."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: jsonable(v) for k, v in value}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------------ the file
@dataclass
class Cell:
    """One cell of a table (or the one run of a file): its merged options and what the table says about it."""

    name: str
    variant: Optional[str]
    dataset: Optional[str]
    options: Dict[str, object]                 # dest -> raw TOML value, merged [run] < dataset < variant
    origin: Dict[str, str]                     # dest -> "run" / "datasets.X" / "variants.Y"
    meta: Dict[str, object] = field(default_factory=dict)   # label, files, metrics, runnable, reason, ...
    evaluate: Dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or self.name)

    @property
    def runnable(self) -> bool:
        return self.meta.get("runnable", True) is not False

    @property
    def variant_label(self) -> str:
        return str(self.meta.get("variant_label") or self.variant or self.name)

    @property
    def dataset_label(self) -> str:
        return str(self.meta.get("dataset_label") or self.dataset or self.options.get("data") or "")


class ConfigFile:
    """A parsed and checked configuration file."""

    def __init__(self, path: str):
        self.path = os.path.abspath(os.path.expanduser(path))
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            known = ", ".join(packaged_names())
            raise ConfigError(f"config file {path} does not exist (the packaged ones: {known}, in {CONFIG_DIR})") \
                from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            self.data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} does not parse as TOML: {str(e).splitlines()[0]}") from None
        self._actions = train_actions()
        self._check()

    # -- structure
    def _where(self, section: str) -> str:
        return f"{self.path} [{section}]"

    def _check(self):
        unknown = [k for k in self.data if k not in SECTIONS]
        if unknown:
            raise ConfigError(f"{self.path}: unknown table [{unknown[0]}]; a config file holds the tables "
                              f"{', '.join('[' + s + ']' for s in SECTIONS)}")
        for section in SECTIONS:
            value = self.data.get(section, {})
            if not isinstance(value, dict):
                raise ConfigError(f"{self.path}: {section} must be a table [{section}], not a "
                                  f"{type(value).__name__}")
        self._check_keys(self.data.get("table", {}), TABLE_KEYS, "table")
        self._check_evaluate(self.data.get("evaluate", {}), "evaluate")
        self._options(self.data.get("run", {}), "run", ())
        for kind, extra in (("datasets", ENTRY_KEYS), ("variants", VARIANT_KEYS), ("stages", ())):
            for key, entry in self.data.get(kind, {}).items():
                if not isinstance(entry, dict):
                    raise ConfigError(f"{self.path}: {kind}.{key} must be a table [{kind}.{key}]")
                self._options(entry, f"{kind}.{key}", extra)
                if isinstance(entry.get("evaluate"), dict):
                    self._check_evaluate(entry["evaluate"], f"{kind}.{key}.evaluate")
                elif "evaluate" in entry:
                    raise ConfigError(f"{self._where(kind + '.' + key)}: evaluate must be a table like "
                                      f"{{ samples = 2000 }}")
                metrics = entry.get("metrics", [])
                for name in metrics if isinstance(metrics, list) else [None]:
                    if name not in METRICS:
                        raise ConfigError(f"{self._where(kind + '.' + key)}: metrics must be a list of "
                                          f"{', '.join(METRICS)}; got {entry.get('metrics')!r}")
        datasets = self.data.get("datasets", {})
        for key, entry in self.data.get("variants", {}).items():
            for d in entry.get("datasets", []):
                if d not in datasets:
                    raise ConfigError(f"{self._where('variants.' + key)}: datasets names {d!r}, which is no "
                                      f"[datasets.*] of the file ({', '.join(datasets) or 'none'})")
        for name in self.data.get("table", {}).get("metrics", []):
            if name not in METRICS:
                raise ConfigError(f"{self._where('table')}: unknown metric {name!r}; choose from {', '.join(METRICS)}")

    def _check_keys(self, entry: dict, valid, section: str):
        for key in entry:
            if key not in valid:
                raise ConfigError(f"{self._where(section)}: unknown key {key!r}; valid keys: {', '.join(valid)}")

    def _check_evaluate(self, entry: dict, section: str):
        self._check_keys(entry, EVALUATE_KEYS, section)
        for key, value in entry.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key != "quality_samples" else 0):
                raise ConfigError(f"{self._where(section)}: {key} = {value!r}: expected a "
                                  f"{'non-negative' if key == 'quality_samples' else 'positive'} integer")

    def _options(self, entry: dict, section: str, extra) -> Dict[str, object]:
        """Check an entry's keys (options of zoo train, plus ``extra``) and convert its options."""
        out = {}
        for key, value in entry.items():
            if key in extra:
                continue
            if key not in self._actions:
                valid = sorted(self._actions) + list(extra)
                raise ConfigError(f"{self._where(section)}: unknown key {key!r}; valid keys: {', '.join(valid)}")
            if key == "m1_run" and isinstance(value, str) and value.startswith("@"):
                if value[1:] not in self.data.get("stages", {}):
                    raise ConfigError(f"{self._where(section)}: m1_run = {value!r} names no [stages.{value[1:]}]")
                out[key] = value
                continue
            out[key] = convert(self._actions[key], key, value, self._where(section))
        return out

    # -- cells
    @property
    def table(self) -> dict:
        return self.data.get("table", {})

    @property
    def name(self) -> str:
        return str(self.table.get("name") or os.path.splitext(os.path.basename(self.path))[0])

    @property
    def open_settings(self) -> dict:
        return dict(self.data.get("open_settings", {}))

    @property
    def not_expressible(self) -> dict:
        return dict(self.data.get("not_expressible", {}))

    def cells(self) -> List[Cell]:
        """Every cell: each variant crossed with the data sets it names (all by default); a file with only one of
        the two axes has a cell per entry; a file with neither is one cell, ``run``."""
        run = self.data.get("run", {})
        datasets = self.data.get("datasets", {}) or {None: {}}
        variants = self.data.get("variants", {}) or {None: {}}
        cells = []
        for vkey, variant in variants.items():
            for dkey in variant.get("datasets") or list(datasets):
                dataset = datasets[dkey]
                options, origin = {}, {}
                for section, entry in (("run", run), (f"datasets.{dkey}", dataset), (f"variants.{vkey}", variant)):
                    for key, value in entry.items():
                        if key not in VARIANT_KEYS:
                            options[key], origin[key] = value, section
                meta = {k: v for k, v in dataset.items() if k in ENTRY_KEYS}
                meta.update({k: v for k, v in variant.items() if k in ENTRY_KEYS and k != "files"})
                meta["metrics"] = list(variant.get("metrics") or dataset.get("metrics")
                                       or self.table.get("metrics") or ["nll"])
                meta["variant_label"] = variant.get("label", vkey)
                meta["dataset_label"] = dataset.get("label", dkey)
                if vkey and dkey:
                    meta["label"] = f"{meta['variant_label']}, {meta['dataset_label']}"
                    name = f"{vkey}@{dkey}"
                else:
                    name = vkey or dkey or "run"
                evaluate = {**self.data.get("evaluate", {}), **dataset.get("evaluate", {}),
                            **variant.get("evaluate", {})}
                cells.append(Cell(name, vkey, dkey, options, origin, meta, evaluate))
        return cells

    def cell(self, name: Optional[str]) -> Cell:
        cells = self.cells()
        if name is None:
            if len(cells) == 1:
                return cells[0]
            raise ConfigError(f"{self.path} holds {len(cells)} cells; choose one with --cell NAME: "
                              f"{', '.join(c.name for c in cells)}")
        for c in cells:
            if c.name == name:
                return c
        stages = self.data.get("stages", {})
        if name.startswith("stage-") and name[len("stage-"):] in stages:
            return self.stage(name[len("stage-"):])
        names = [c.name for c in cells] + [f"stage-{k}" for k in stages]
        raise ConfigError(f"{self.path} has no cell {name!r}; its cells: {', '.join(names)}")

    def stage(self, key: str) -> Cell:
        """A helper run (``[stages.KEY]``) on the [run] options of the file."""
        entry = self.data.get("stages", {})[key]
        run = self.data.get("run", {})
        options = {**run, **entry}
        origin = {**{k: "run" for k in run}, **{k: f"stages.{key}" for k in entry}}
        return Cell(f"stage-{key}", None, None, options, origin, {"label": f"stage {key}"},
                    dict(self.data.get("evaluate", {})))

    def converted(self, cell: Cell) -> Dict[str, object]:
        """The cell's options as argparse values (``m1_run = "@stage"`` kept as written)."""
        return {k: (v if k == "m1_run" and str(v).startswith("@") else
                    convert(self._actions[k], k, v, f"{self.path} [{cell.origin.get(k, 'run')}]"))
                for k, v in cell.options.items()}

    def check_model_keys(self, cell: Cell, model: str, keys=None):
        """Refuse, in one line, an option of ``cell`` that ``model`` does not take (``latent_dim1`` for vae): the
        model's general options (--latent-dim, --hidden, ...) must be parameters of its constructor."""
        from zoo.cli.assemble import GENERAL_OPTIONS, _parameters, register_all
        from zoo.model import MODELS

        register_all()
        general = set(GENERAL_OPTIONS.values())
        keys = [k for k in (cell.options if keys is None else keys) if k in general]
        if not keys:
            return
        entry = MODELS.entry(model)
        params = {} if entry.source != "registered" else _parameters(entry.factory)
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return
        takes = sorted(k for k in general if k in params)
        for key in keys:
            if key not in params:
                others = sorted(k for k in self._actions if k not in general)
                raise ConfigError(
                    f"{self.path} [{cell.origin.get(key, 'run')}]{'' if cell.name == 'run' else f' (cell {cell.name})'}"
                    f": model {model!r} takes no "
                    f"{key!r}; valid keys for {model}: {', '.join(takes) or 'none of the model options'}, and the "
                    f"run's own: {', '.join(others)}")


def load(path: str) -> ConfigFile:
    """A configuration file by path, or a packaged one by name (``vampprior``)."""
    if not os.path.exists(path) and os.sep not in path and os.path.exists(packaged(path)):
        path = packaged(path)
    return ConfigFile(path)


# ------------------------------------------------------------------------------------------------------ zoo train
def apply_to_train_args(args, argv=None) -> dict:
    """``zoo train --config FILE [--cell NAME]``: set every option of the cell that the command line did not give
    on ``args`` (explicit flags win), check the cell's keys against the resulting model, and return what config.json
    records (``config_file``: path, SHA-256, cell, the options taken from the file, those the flags overrode)."""
    if getattr(args, "resume", None):
        raise ConfigError("--config starts a run; --resume continues one as it was configured: drop --config")
    cf = load(args.config)
    cell = cf.cell(args.cell)
    if not cell.runnable:
        raise ConfigError(f"{cf.path}: cell {cell.name} is listed, not run: {cell.meta.get('reason')}")
    explicit = explicit_train_options(argv) if argv is not None else _given_by_value(args)
    values = cf.converted(cell)
    dropped = {}
    if "data" in explicit:  # a data set's own keys do not follow it to another data set
        for key in DATA_BOUND:
            if key in values and cell.origin.get(key, "").startswith("datasets."):
                dropped[key] = jsonable(values.pop(key))
    m1 = values.get("m1_run")
    if isinstance(m1, str) and m1.startswith("@") and "m1_run" not in explicit:
        raise ConfigError(f"{cf.path} (cell {cell.name}): m1_run = {m1!r} is the run of [stages.{m1[1:]}], which "
                          f"`zoo reproduce` trains first; give --m1-run DIR (a trained m1 on the same data)")
    from_file, overridden = {}, {}
    for dest, value in values.items():
        if dest in explicit:
            overridden[dest] = jsonable(getattr(args, dest))
        else:
            setattr(args, dest, value)
            from_file[dest] = jsonable(value)
    from zoo.references import canonical

    model = canonical(getattr(args, "model", None) or "vae")
    cf.check_model_keys(cell, model, keys=[k for k in from_file])
    settings = {**from_file, **overridden}
    return {"path": cf.path, "sha256": cf.sha256, "table": cf.name, "cell": cell.name, "from_file": from_file,
            "overridden_by_flags": overridden, "dropped_with_data": dropped, "settings": settings,
            "evaluate": dict(cell.evaluate)}


def _given_by_value(args) -> set:
    """Without the command line: the options whose value differs from zoo train's default."""
    from zoo.cli.main import build_parser

    defaults = vars(build_parser().parse_args(["train"]))
    return {k for k, v in vars(args).items() if k in defaults and k not in ("config", "cell") and v != defaults[k]}
