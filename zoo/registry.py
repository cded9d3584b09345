"""Name -> component registries filled by decorators.

Every model, guide, objective, prior and data set registers itself under a name, so the CLI, the report and the tests
enumerate them without hand-kept lists. A *spec* is ``name`` or ``name:ARG`` (``iwae:5``, ``planar:8``); the part after
the colon is handed to the factory as its first argument, parsed as an int where it is one.

A spec may also be an import reference, ``package.module:attr[:ARG]`` or ``path/to/file.py:attr[:ARG]``, or a name
that an installed package adds through its entry-point group (:mod:`zoo.references`): the user's own components are
looked up exactly like the registered ones. Registered names win over references.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from zoo import references
from zoo.errors import ConfigError, UnknownNameError


@dataclass
class Entry:
    name: str
    factory: Callable
    paper: str = ""
    summary: str = ""
    arg: Optional[str] = None  # what the ``:ARG`` part means, None if the component takes none
    meta: Dict[str, Any] = field(default_factory=dict)
    source: str = "registered"  # or "reference" / "entry point": a user's object, which may be a plain Pyro program


def parse_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"iwae:5" -> ("iwae", "5")``, ``"elbo" -> ("elbo", None)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty component name {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    return name, (arg if sep else None)


def parse_arg(arg: str):
    try:
        return int(arg)
    except ValueError:
        return arg


class Registry:
    """A named collection of factories, filled with the :meth:`register` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Entry] = {}

    def register(self, name: str, paper: str = "", summary: str = "", arg: Optional[str] = None, **meta):
        def decorator(factory):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, factory, paper, summary or (doc[0] if doc else ""), arg, meta)
            return factory

        return decorator

    def _load_entry_points(self):
        """Add the components that installed packages declare in this kind's entry-point group (once)."""
        if getattr(self, "_entry_points_loaded", False):
            return
        self._entry_points_loaded = True
        for name, ep in references.entry_point_objects(self.kind).items():
            if name in self._entries:
                continue
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - a broken plug-in is named, not fatal to the rest
                raise ConfigError(f"{self.kind} {name!r} of the installed entry point {ep.value} cannot be loaded: "
                                  f"{type(e).__name__}: {e}")
            self._entries[name] = _entry_for(name, obj, None, paper=f"entry point {ep.value}", source="entry point")

    def names(self):
        self._load_entry_points()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def __contains__(self, name):
        return parse_spec(name)[0] in self.names()

    def lookup(self, spec: str) -> Tuple[Entry, Optional[str]]:
        """The entry ``spec`` names and its ``:ARG`` part: a registered or entry-point name, else an import
        reference (imported now)."""
        name, arg = parse_spec(spec)
        if name in self.names():
            return self._entries[name], arg
        ref = references.parse_reference(spec)
        if ref is not None and references.looks_like_reference(spec):
            obj = references.resolve(ref)
            return _entry_for(references.canonical(ref.target), obj, ref.arg), ref.arg
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())} (see `zoo list`), or give "
            f"your own as package.module:attr or path/to/file.py:attr"
        )

    def entry(self, spec: str) -> Entry:
        return self.lookup(spec)[0]

    def build(self, spec: str, *args, **kwargs):
        """Call the factory of ``spec``; the ``:ARG`` part, if any, comes first."""
        entry, arg = self.lookup(spec)
        if arg is not None and entry.meta.get("text_arg"):  # the factory parses and checks its own argument
            return entry.factory(arg, *args, **kwargs)
        if arg is None and entry.meta.get("optional_arg"):
            return entry.factory(*args, **kwargs)
        if arg is not None:
            if entry.arg is None:
                raise ConfigError(f"{self.kind} {entry.name!r} takes no ':' argument, got {spec!r}")
            value = parse_arg(arg)
            if isinstance(value, int) and value < 1 or entry.source == "registered" and not isinstance(value, int):
                raise ConfigError(f"{self.kind} {spec!r}: {entry.arg} must be a positive integer, got {arg!r} "
                                  f"(e.g. {entry.name}:4)")
            return entry.factory(value, *args, **kwargs)
        if entry.arg is not None:
            raise ConfigError(f"{self.kind} {entry.name!r} needs its {entry.arg}: write {entry.name}:{entry.arg} "
                              f"(e.g. {entry.name}:{entry.meta.get('example', 4)})")
        return entry.factory(*args, **kwargs)


def _entry_for(name: str, obj, arg: Optional[str], paper: str = "", source: str = "reference") -> Entry:
    """An :class:`Entry` for a user's object found by reference or entry point; ``obj.zoo_meta`` (a dict) may carry
    the same metadata a decorator would (defaults, capabilities)."""
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    meta = dict(getattr(obj, "zoo_meta", {}) or {})
    return Entry(name, obj, paper or getattr(obj, "zoo_paper", ""), doc[0] if doc else "",
                 "ARG" if arg is not None else None, meta, source)
