"""Name -> component registries filled by decorators.

Every model, guide, objective, prior and data set registers itself under a name, so the CLI, the report and the tests
enumerate them without hand-kept lists. A *spec* is ``name`` or ``name:ARG`` (``iwae:5``, ``planar:8``); the part after
the colon is handed to the factory as its first argument, parsed as an int where it is one.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from zoo.errors import ConfigError, UnknownNameError


@dataclass
class Entry:
    name: str
    factory: Callable
    paper: str = ""
    summary: str = ""
    arg: Optional[str] = None  # what the ``:ARG`` part means, None if the component takes none
    meta: Dict[str, Any] = field(default_factory=dict)


def parse_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"iwae:5" -> ("iwae", "5")``, ``"elbo" -> ("elbo", None)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty component name {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    return name, (arg if sep else None)


def _parse_arg(arg: str):
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

    def names(self):
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def __contains__(self, name):
        return parse_spec(name)[0] in self._entries

    def entry(self, spec: str) -> Entry:
        name, _ = parse_spec(spec)
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())} (see `zoo list`)"
            )
        return self._entries[name]

    def build(self, spec: str, *args, **kwargs):
        """Call the factory of ``spec``; the ``:ARG`` part, if any, comes first."""
        entry = self.entry(spec)
        _, arg = parse_spec(spec)
        if arg is not None:
            if entry.arg is None:
                raise ConfigError(f"{self.kind} {entry.name!r} takes no ':' argument, got {spec!r}")
            value = _parse_arg(arg)
            if isinstance(value, int) and value < 1:
                raise ConfigError(f"{self.kind} {spec!r}: {entry.arg} must be a positive integer")
            return entry.factory(value, *args, **kwargs)
        if entry.arg is not None:
            raise ConfigError(f"{self.kind} {entry.name!r} needs its {entry.arg}: write {entry.name}:{entry.arg} "
                              f"(e.g. {entry.name}:4)")
        return entry.factory(*args, **kwargs)
