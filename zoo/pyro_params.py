"""``pyro.param`` and ``pyro.module`` inside a zoo model or guide: trained by the zoo's optimizer, saved in checkpoints.

The zoo steps ``nn.Module`` parameters with one torch optimizer and never reads Pyro's global param store, so a
``pyro.param("W", init)`` written in a model would otherwise be created in that store, never trained, never saved.
:class:`CapturedParams` is an ``nn.Module`` that answers a program's ``param`` statements itself (a
:class:`~pyro.poutine.messenger.Messenger` sets the value, so the store is never touched):

* ``pyro.param(name, init, constraint=c)``: an ``nn.Parameter`` holding the unconstrained value
  u = transform_to(c)^{-1}(init), created the first time the statement runs; the program gets transform_to(c)(u),
  exactly as from Pyro's store (Pyro keeps the unconstrained value the same way);
* ``pyro.module(name, net)`` (whose parameters arrive as ``pyro.param(name$$$p, p)``): the module's own
  ``nn.Parameter`` objects, registered here so they are optimised and saved with the rest.

Parameters appear when the program first runs (the zoo traces every model and guide once when it builds them, before
the optimizer is made), and are keyed by their Pyro names in ``state_dict`` (``pyro_params.<name>``).
"""
import torch
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import constraints, transform_to

from zoo.errors import ConfigError

_MODULE_DIVIDER = "$$$"


def _key(name: str) -> str:
    """A Pyro parameter name as an ``nn.ParameterDict`` key (no dots)."""
    return name.replace(_MODULE_DIVIDER, "__").replace(".", "_")


class CapturedParams(nn.Module):
    """The ``pyro.param`` / ``pyro.module`` parameters of one program (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.pyro_params = nn.ParameterDict()
        self.module_params = nn.ParameterDict()
        self._constraints = {}
        self._names = {}

    def __len__(self):
        return len(self.pyro_params) + len(self.module_params)

    def value(self, name: str, args: tuple, kwargs: dict) -> torch.Tensor:
        init = args[1] if len(args) > 1 else kwargs.get("init_tensor")
        key = _key(name)
        if isinstance(init, nn.Parameter) and _MODULE_DIVIDER in name:  # pyro.module: the module's own parameter
            if key not in self.module_params:
                self.module_params[key] = init
            return init
        if key not in self.pyro_params:
            if init is None:
                raise ConfigError(f"pyro.param({name!r}) has no initial value the first time it runs; give one, "
                                  f"e.g. pyro.param({name!r}, torch.zeros(...))")
            value = init() if callable(init) else init
            constraint = kwargs.get("constraint") or constraints.real
            with torch.no_grad():
                unconstrained = transform_to(constraint).inv(torch.as_tensor(value).detach().clone())
            self.pyro_params[key] = nn.Parameter(unconstrained.clone())
            self._constraints[key] = constraint
            self._names[key] = name
        constraint = self._constraints.get(key, constraints.real)
        raw = self.pyro_params[key]
        return raw if constraint is constraints.real else transform_to(constraint)(raw)

    def constrained(self) -> dict:
        """Pyro name -> constrained value of every ``pyro.param`` (for reading a trained program's parameters)."""
        return {self._names[k]: transform_to(self._constraints[k])(p) for k, p in self.pyro_params.items()}


class ParamMessenger(Messenger):
    """Answers ``param`` statements from a :class:`CapturedParams` instead of Pyro's global store."""

    def __init__(self, params: CapturedParams):
        super().__init__()
        self.params = params

    def _pyro_param(self, msg):
        msg["value"] = self.params.value(msg["name"], msg["args"], msg["kwargs"])
        msg["done"] = True
