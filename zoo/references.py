"""Components from anywhere: import references and entry points.

Wherever the zoo takes a component name (``--model``, ``--guide``, ``--prior``, ``--objective``, ``--likelihood``,
``--data``, and the Python API), it also takes

* ``package.module:attr`` -- an importable module's attribute (the current folder is importable, as with
  ``python -m``), e.g. ``my_models:LaplaceVAE``;
* ``path/to/file.py:attr`` -- an attribute of a Python file, imported by path, e.g. ``tests/user_models.py:hier``;

each optionally followed by ``:ARG`` (handed to the factory first, like ``iwae:5``). Installed packages can add
components under a name through an entry-point group per kind (:data:`ENTRY_POINT_GROUPS`, e.g. in ``setup.py``:
``entry_points={"pyro_zoo.models": ["laplace-vae = my_models:LaplaceVAE"]}``); they are listed by ``zoo list``.

A run's ``config.json`` records the reference with a file path made absolute (:func:`canonical`), so that ``zoo
evaluate``, ``sample``, ``report`` and ``train --resume`` import the same code from any folder, and say in one line
when it can no longer be imported.
"""
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Optional

from zoo.errors import ConfigError

#: kind of registry -> entry-point group through which installed packages add components of that kind
ENTRY_POINT_GROUPS = {"model": "pyro_zoo.models", "guide": "pyro_zoo.guides", "objective": "pyro_zoo.objectives",
                      "prior": "pyro_zoo.priors", "likelihood": "pyro_zoo.likelihoods", "data set": "pyro_zoo.datasets",
                      "critic": "pyro_zoo.critics"}

_MODULE_REF = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?::(.*))?$")
_FILE_REF = re.compile(r"^(.+\.py):([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)(?::(.*))?$")


@dataclass(frozen=True)
class Reference:
    """A parsed import reference: ``module`` is a dotted module name, or ``path`` a ``.py`` file; ``attr`` may be
    dotted (``Outer.Inner``); ``arg`` is the optional ``:ARG`` part."""

    attr: str
    module: Optional[str] = None
    path: Optional[str] = None
    arg: Optional[str] = None

    @property
    def target(self) -> str:
        return f"{self.path or self.module}:{self.attr}"

    def __str__(self):
        return self.target + (f":{self.arg}" if self.arg is not None else "")


def parse_reference(spec: str) -> Optional[Reference]:
    """The :class:`Reference` that ``spec`` spells, or None when it is no import reference (a registry name)."""
    if not isinstance(spec, str):
        return None
    spec = spec.strip()
    m = _FILE_REF.match(spec)
    if m:
        return Reference(attr=m.group(2), path=m.group(1), arg=m.group(3))
    m = _MODULE_REF.match(spec)
    if m:
        return Reference(attr=m.group(2), module=m.group(1), arg=m.group(3))
    return None


def looks_like_reference(spec: str) -> bool:
    ref = parse_reference(spec)
    return ref is not None and (ref.path is not None or "." in ref.module or _importable(ref.module))


def _importable(module: str) -> bool:
    _with_cwd_on_path()
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _with_cwd_on_path():
    """The current folder is importable, as for ``python -m`` (the ``zoo`` script's sys.path lacks it)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def canonical(spec: str) -> str:
    """``spec`` as a run records it: a file reference's path made absolute; anything else unchanged."""
    ref = parse_reference(spec)
    if ref is None or ref.path is None:
        return spec
    absolute = Reference(ref.attr, path=os.path.abspath(os.path.expanduser(ref.path)), arg=ref.arg)
    return str(absolute)


def short_name(spec: str) -> str:
    """A reference as people read it in a table: ``/long/path/user_models.py:hier`` -> ``user_models.py:hier``."""
    ref = parse_reference(spec)
    if ref is None or ref.path is None:
        return spec
    return str(Reference(ref.attr, path=os.path.basename(ref.path), arg=ref.arg))


def _load_file_module(path: str):
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise ConfigError(f"cannot import {path}: no such file")
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    name = f"zoo_user_{re.sub(r'[^0-9A-Za-z_]', '_', os.path.splitext(os.path.basename(path))[0])}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before executing: dataclasses and pickling look the module up by name
    folder = os.path.dirname(path)
    added = folder not in sys.path
    if added:  # the file's own sibling imports work, as when it is run as a script
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module


def resolve(ref: Reference) -> Any:
    """Import the object ``ref`` names; a failure is one :class:`ConfigError` line saying what and why."""
    where = ref.target
    try:
        if ref.path is not None:
            module = _load_file_module(ref.path)
        else:
            _with_cwd_on_path()
            module = importlib.import_module(ref.module)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's code failed to import: say so in one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"cannot import {where}: {type(e).__name__}: {first}")
    obj = module
    for part in ref.attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"cannot import {where}: {ref.path or ref.module} has no attribute {ref.attr!r}")
        obj = getattr(obj, part)
    return obj


def reference_of(obj) -> Optional[str]:
    """The import reference that names ``obj`` (a class or function defined at module level), or None.

    Objects of a script run as ``__main__`` are named by the script's path; objects of a file imported by path by
    that path. Used by the Python API so that a run made from objects can be rebuilt by the CLI."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module_name or not qualname or "<" in qualname:  # lambdas and functions defined inside functions
        return None
    module = sys.modules.get(module_name)
    if module is None:
        return None
    target = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not obj:
        return None
    path = getattr(module, "__file__", None)
    if module_name == "__main__" or module_name.startswith("zoo_user_") or module_name not in _importable_names():
        if path is None:
            return None
        return f"{os.path.abspath(path)}:{qualname}"
    return f"{module_name}:{qualname}"


def _importable_names():
    """Module names that a fresh process can import again by name (not the ones loaded from a file path)."""
    return {name for name, m in list(sys.modules.items())
            if m is not None and getattr(getattr(m, "__spec__", None), "name", None) == name}


def entry_point_objects(kind: str) -> dict:
    """name -> entry point (not yet loaded) of the installed packages' group for ``kind``."""
    group = ENTRY_POINT_GROUPS.get(kind)
    if group is None:
        return {}
    from importlib.metadata import entry_points

    try:
        found = entry_points(group=group)
    except Exception:  # noqa: BLE001 - a broken distribution's metadata must not break the zoo
        return {}
    return {ep.name: ep for ep in found}
