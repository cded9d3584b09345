"""The model contract shared by every generative model of the zoo (docs/architecture.md, "Contracts").

A model is an ``nn.Module`` whose ``forward(x, y=None)`` is the Pyro model of a mini-batch x of shape
(B, D): the data points live in ``pyro.plate("data", B)`` at dim -1, the observed site is ``"x"`` (``"y"`` for labels),
every within-point dimension is an event dimension, so each site's log-density has one value per data point and losses
are nats per data point once divided by B. Besides the Pyro model it declares

* :meth:`latent_sites` -- name, size, support and guide dependencies of each latent, so a guide can be built for it;
* :meth:`make_encoder` -- the feature extractor h(x) that an amortized guide puts in front of its heads (an MLP for
  vector models, a conv net for image models), so swapping the guide never changes the model;
* :meth:`sample` / :meth:`decode_mean` -- what reports need to draw samples and reconstructions.
"""
import functools
import inspect
from typing import List, Optional, Tuple

import pyro
import pyro.poutine as poutine
import torch
from torch import nn

from zoo.errors import ConfigError, ContractError
from zoo.latents import LatentSite
from zoo.pyro_params import CapturedParams, ParamMessenger
from zoo.registry import Registry

MODELS = Registry("model")


class ZooModel(nn.Module):
    """Base of every model. A plain ``nn.Module`` rather than a ``PyroModule``: the zoo trains parameters with a torch
    optimizer and never through Pyro's param store, and ``PyroModule.__getattr__`` registers every submodule with that
    store on each access (0.4 ms of a 2 ms VAE step measured here). Pyro's ELBOs accept any ``nn.Module``.

    ``pyro.param`` / ``pyro.module`` statements in ``forward`` are answered by the model's own :attr:`captured`
    parameters (:mod:`zoo.pyro_params`), so they are trained and saved like any other parameter. A model that does not
    override :meth:`latent_sites` has its latents found by tracing it once on real data (:meth:`prepare`,
    :mod:`zoo.tracing`)."""

    #: plates a model nests (the data plate); a particle plate for vectorised importance sampling goes left of them
    max_plate_nesting = 1
    #: the likelihood's data requirement is checked by ``check_data``; models that take labels set this
    uses_labels = False
    #: run the model once at build time to create its pyro.params (False where a first run has side effects, such as
    #: glow's data-dependent actnorm initialisation; such a model must not use pyro.param)
    traced_at_build = True
    #: hidden widths of the default encoder a guide puts on vector data
    encoder_hidden = (400,)
    #: True for an implicit generator (GANs: x = G(z), the site "x" a point mass with no density): it samples like any
    #: model, but has no log p(x), so likelihood objectives and the importance-sampled NLL refuse it in one line
    implicit = False

    def __init__(self, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__()
        if data_dim < 1:
            raise ConfigError(f"data dimension must be positive, got {data_dim}")
        self.data_dim = data_dim
        self.image_shape = tuple(image_shape) if image_shape else None
        self.captured = CapturedParams()
        self._structure = None
        self._captures_params = True  # until prepare() has run the model once

    def __call__(self, *args, **kwargs):
        # a messenger on Pyro's stack costs every site of every step (~6 % of a VAE step): it is there only until the
        # build-time run (prepare) has shown whether the model has pyro.params at all
        if self._captures_params:
            with ParamMessenger(self.captured):
                return super().__call__(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    # ------------------------------------------------------------------------------------------- structure
    def declares_latents(self) -> bool:
        """True when the class lists its latents by hand (:meth:`latent_sites` overridden)."""
        return type(self).latent_sites is not ZooModel.latent_sites

    def prepare(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        """Run the model once on a mini-batch of real data, before the guide and the optimizer are built: its
        ``pyro.param``s come into being, and a model without hand-declared latents is traced for them (with the
        contract checks of :func:`zoo.tracing.trace_structure`)."""
        from zoo.tracing import trace_structure

        was_training = self.training
        self.eval()
        try:
            if not self.declares_latents():
                self._structure = trace_structure(self, x, y, who=f"model {self.display_name()}")
                self.max_plate_nesting = self._structure.max_plate_nesting
            elif self.traced_at_build:
                with torch.no_grad():
                    poutine.trace(poutine.block(self, hide_types=["param"])).get_trace(x, y)
        finally:
            self.train(was_training)
        self._captures_params = len(self.captured) > 0

    def display_name(self) -> str:
        return type(self).__name__

    def example_input(self) -> torch.Tensor:
        """A placeholder mini-batch (zeros) on the model's device, for tracing when no data were given."""
        p = next(iter(self.parameters()), None)
        return torch.zeros(2, self.data_dim, device=None if p is None else p.device)

    def latent_sites(self) -> List[LatentSite]:
        """The latents found by tracing (:meth:`prepare`); classes may override this with a hand-written list."""
        if self._structure is None:
            self.prepare(self.example_input())
        return self._structure.latents

    def make_encoder(self) -> nn.Module:
        """A fresh feature extractor x (..., D) -> h (..., F) with attribute ``out_features`` = F: by default chosen
        from the data's shape (an MLP of :attr:`encoder_hidden` on vectors, the VampPrior paper's gated
        convolutions on images)."""
        from zoo.networks.mlp import MLP

        if self.image_shape is not None:
            from zoo.convhvae import GatedConvEncoder

            return GatedConvEncoder(self.image_shape, 294)
        return MLP(self.data_dim, self.encoder_hidden, None, act="relu")

    def observed_is_discrete(self) -> bool:
        """True when p(x|...) is a probability mass function (its NLL is a code length, so bits/dim apply)."""
        likelihood = getattr(self, "likelihood", None)
        if likelihood is not None:
            return bool(getattr(likelihood, "is_discrete", True))
        if self.declares_latents():  # a zoo model without a likelihood module (flow models: bits/dim by their bins)
            return True
        return bool(self._observed_fn(self.example_input()).support.is_discrete)

    def _observed_fn(self, x, y=None):
        with torch.no_grad():
            trace = poutine.trace(poutine.block(self, hide_types=["param"])).get_trace(x, y)
        if "x" not in trace.nodes:
            raise ContractError(f"model {self.display_name()} has no observed site 'x'; write "
                                f"pyro.sample('x', <p(x | ...)>, obs=x) inside pyro.plate('data', ...)")
        return trace.nodes["x"]["fn"]

    def check_data(self, x: torch.Tensor, where: str = "the data"):
        """Raise :class:`zoo.errors.DataError` when x does not suit the model (shape, support of the likelihood)."""
        from zoo.errors import DataError

        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"{where} has shape {tuple(x.shape)}, but the model expects (N, {self.data_dim})")
        likelihood = getattr(self, "likelihood", None)
        if likelihood is not None:
            likelihood.check_data(x, where)
            return
        fn = self._observed_fn(x[:2])
        ok = fn.support.check(x)
        if not bool(ok.all()):
            raise DataError(f"{where} has values outside the support {fn.support} of the model's p(x | ...) "
                            f"({type(fn).__name__}); e.g. binarize grey levels for a Bernoulli (--binarize dynamic), "
                            f"or choose an observation model for these values")

    @torch.no_grad()
    def decode_mean(self, trace_sites: dict) -> torch.Tensor:
        """E[x | latents] from a model trace's observed site (used for samples and reconstructions)."""
        fn = trace_sites["x"]["fn"]
        return fn.mean

    @torch.no_grad()
    def sample(self, n: int, like: torch.Tensor, mean: bool = True) -> torch.Tensor:
        """n draws from the model: z ~ p(z), then E[x|z] (``mean=True``) or x ~ p(x|z). ``like`` fixes device/dtype.

        The model is traced on a placeholder x so that its latents come from the prior; the observed site's
        distribution is the decoder's p(x|z)."""
        placeholder = like.new_zeros(n, self.data_dim)
        trace = poutine.trace(poutine.block(self, hide_types=["param"])).get_trace(placeholder)
        fn = trace.nodes["x"]["fn"]
        return fn.mean if mean else fn.sample()

    def extra_repr(self):
        return f"data_dim={self.data_dim}"


def data_plate(x: torch.Tensor):
    """The data plate every model and guide uses: one slot per data point of the mini-batch, at dim -1.

    The plate's indices ``arange(n)`` are built once per (n, device) and handed to it with the device, instead of
    Pyro creating them and probing the default device at every entry (13 -> 6 microseconds a plate)."""
    return pyro.plate("data", x.shape[0], dim=-1, subsample=_plate_indices(x.shape[0], x.device), device=x.device)


@functools.lru_cache(maxsize=8)
def _plate_indices(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


def accepts_y(fn) -> bool:
    """True when a Pyro program takes the labels as a second argument (``model(x, y=None)``)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def modules_referenced(fn) -> dict:
    """The ``nn.Module``s a function names directly (its globals and closure): a function model's networks."""
    found = {}
    code = getattr(fn, "__code__", None)
    if code is None:
        return found
    glb = getattr(fn, "__globals__", {})
    for name in code.co_names:
        obj = glb.get(name)
        if isinstance(obj, nn.Module):
            found[name] = obj
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            obj = cell.cell_contents
        except ValueError:
            continue
        if isinstance(obj, nn.Module):
            found[name] = obj
    return found


class TracedModel(ZooModel):
    """Any Pyro program as a zoo model: a function ``model(x, y=None)`` or an ``nn.Module`` (not a ZooModel) whose
    ``forward(x, y=None)`` is the model. Its latents come from tracing (:mod:`zoo.tracing`); its parameters are the
    module's own, the ``nn.Module``s a function names (globals, closure), and every ``pyro.param``/``pyro.module``
    (:mod:`zoo.pyro_params`). A class may still declare ``latent_sites()`` by hand (e.g. a guide order), which wins."""

    def __init__(self, program, data_dim: int, image_shape: Optional[Tuple[int, int, int]] = None, name: str = ""):
        super().__init__(data_dim, image_shape)
        if isinstance(program, nn.Module):
            self.program = program
        else:
            self._function = program
            self.used_modules = nn.ModuleDict(modules_referenced(program))
        self._takes_y = accepts_y(program.forward if isinstance(program, nn.Module) else program)
        self.accepts_labels = self._takes_y  # a program model(x, y=None) is given the labels (--labels applies)
        self._name = name or getattr(program, "__name__", type(program).__name__)
        declared = getattr(program, "latent_sites", None)
        self._declared = declared if callable(declared) else None
        if hasattr(program, "make_encoder"):
            self.make_encoder = program.make_encoder
        if hasattr(program, "max_plate_nesting"):
            self.max_plate_nesting = program.max_plate_nesting
        if getattr(program, "implicit", False):  # x = G(z) observed as a point mass: adversarial objectives only
            self.implicit = True

    def display_name(self) -> str:
        return self._name

    def _program(self):
        return self.program if "program" in self._modules else self._function

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        fn = self._program()
        return fn(x, y) if self._takes_y else fn(x)

    def prepare(self, x, y=None):
        super().prepare(x, y)
        if self._declared is not None:  # hand-declared latents override what tracing found
            self._structure.latents = list(self._declared())
        check_all_parameters_known(self, x, y)

    def extra_repr(self):
        return f"{self._name}, data_dim={self.data_dim}"


def check_all_parameters_known(program, x, y=None, who: str = None):
    """Refuse a program whose log-density depends on a tensor that requires grad but is none of its parameters (a
    global tensor the zoo could neither train nor save): walk the autograd graph of one trace's log-density."""
    known = {id(p) for p in program.parameters()}
    with torch.enable_grad():
        trace = poutine.trace(poutine.block(program, hide_types=["param"])).get_trace(x, y)
        total = trace.log_prob_sum()
    if not total.requires_grad:
        return
    seen, stack, unknown = set(), [total.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) not in known:
            unknown.append(tuple(variable.shape))
        stack.extend(n for n, _ in node.next_functions)
    if unknown:
        who = who or f"model {getattr(program, 'display_name', lambda: type(program).__name__)()}"
        raise ContractError(
            f"{who} uses {len(unknown)} tensor(s) that require grad but are not its parameters (shapes "
            f"{', '.join(str(s) for s in unknown[:3])}), so they would never be trained or saved; create them with "
            f"pyro.param, or put them in an nn.Module that the model names or registers with pyro.module")
