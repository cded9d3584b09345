"""The training step traced once per shape and replayed: loss and gradients as one graph of tensor operations.

A step of stochastic variational inference runs the guide and the model through Pyro's handlers (messages, plates,
distribution objects, the objective's bookkeeping), then autograd's backward. For a given model, guide, objective and
mini-batch shape, all of that Python decides the same thing at every step: which sites exist, their plates and scales,
which KL is analytic, which tensor operations run. Only the tensors change. So the step is traced once, with fake
tensors (``torch.fx.experimental.proxy_tensor.make_fx``), into the graph of the tensor operations it performs, forward
and backward together (``torch.autograd.grad`` inside the trace, so a custom ``autograd.Function``, a ``detach``, a
gradient hook or a gradient penalty's double backward is recorded exactly as it runs), and that graph is replayed:

    (x, y, parameters, buffers) -> (sum over the batch of the loss, d(loss / B) / d parameters)

(two-player objectives: each player's mean loss and its gradients, the other player's tensors as inputs).

The model and guide stay Pyro programs; the trace is one of their executions. Random draws are graph operations
(``normal_`` ...) on the global generator, consumed in the eager order, so a replayed step equals the eager step bit
for bit under the same seed. That is checked, not assumed: when a key is traced, the eager step and the replayed
graph run from the same RNG and state, and the graph is used only if its outputs and every gradient are identical
(``torch.equal``); otherwise that key stays eager. The check is repeated every ``RECHECK_EVERY`` replays of a plan
(one eager step in 200, about half a per cent), so a change of state the key cannot see (a global variable a user's
program reads) ends the plan within 200 steps. A resumed run therefore continues exactly whichever steps were traced.

What a plan is valid for (its key): the shapes, dtypes and devices of x and y; grad mode, torch's default dtype,
Pyro's validation flag and the global module hooks (the precision is the run's); and the state of every module of
the loss (model, guide and their submodules, the other player) and of the objective, read through a
:class:`_Layout`: module identities, training flags, the identities of parameters, buffers and leaf tensor
attributes (the shape of a tensor a forward computed and kept, such as a flow's cache), the parameters'
requires_grad flags, the number of hooks, and every plain attribute (numbers, strings, booleans, None:
hyperparameters such as the objective's KL weight, a flag that a lazy initialisation has run). A change of any of
these makes a new key: a swapped submodule, a new parameter tensor, a frozen module, train/eval, a hook added (the
inference gap's), a new batch size, KL warm-up's weight. Python control flow that depends on tensor values cannot be
traced with fake tensors (it raises), so such programs (Pyro's enumeration, rejection samplers, validation checks)
keep the eager step; so do distributed runs (DDP's gradient hooks belong to autograd's backward).

A key is traced after ``trace_after`` eager steps with it (the first eager step fills the programs' caches). A trace
costs about as much as 60 to 70 eager steps (0.2 s for the MLP VAE, 7 s for the 28-step VRNN) and saves 15 to 20 per
cent of each later one, so it pays for itself after a few hundred steps: a run's full batches are traced, its last
partial batch of each epoch (one use an epoch) and KL warm-up's changing weights in effect never.
"""
import collections
import contextlib
import operator
from typing import Optional

import pyro.poutine.util as poutine_util
import torch
from torch import nn
from torch.nn.modules import module as _module_globals

TRACE_AFTER = 50  # eager steps with one key before it is traced (--step auto)
RECHECK_EVERY = 200  # replays of a plan between two checks against the eager step
MAX_KEYS_COUNTED = 10_000  # untraced keys whose uses are counted at once
PLAIN = (bool, int, float, str, type(None))


def _rng_state(device: torch.device):
    state = [torch.get_rng_state()]
    if device.type == "cuda":
        state.append(torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(device: torch.device, state):
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)


def _validation_flags():
    return poutine_util.is_validation_enabled(), torch.distributions.Distribution._validate_args


_MODULE_TABLES = ("_parameters", "_buffers", "_modules")
_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                 "_forward_hooks_with_kwargs")


def _tensor_state(value):
    """A leaf tensor (an input, a constant) by identity; a tensor a forward computed and kept (a flow's cached
    log-scale, rebound at every eager call) by its kind only; anything else by identity."""
    if torch.is_tensor(value) and value.grad_fn is not None:
        return value.shape, value.dtype
    return id(value)


class _Layout:
    """Which attributes of the loss's modules and of the objective a traced step depends on, found once and then read
    at every step (the per-step state costs microseconds): plain values (numbers, strings, booleans, None), tensor
    attributes (:func:`_tensor_state`), the identities of each module's parameters, buffers and submodules, the
    number of its hooks, the parameters' ``requires_grad`` flags, and the number of attributes of each object (so
    that one added anywhere is noticed). A change of structure (an attribute added or removed, a parameter, buffer or
    submodule swapped) changes that state and marks the layout ``stale``: the caller builds a new one before the state
    is used as a key, so a new submodule's attributes are watched from then on. (A change of values only, such as KL
    warm-up's weight at every step, needs no new layout.)"""

    def __init__(self, loss_module: nn.Module, objective):
        self.parameters = list(loss_module.parameters())  # whose requires_grad flags decide which gradients exist
        self.entries, self.plain_names = [], []
        for obj in list(loss_module.modules()) + [objective]:
            d = getattr(obj, "__dict__", {})
            plain = [n for n, v in d.items() if type(v) in PLAIN]
            tensors = tuple(n for n, v in d.items() if torch.is_tensor(v))
            tables = tuple(d[n] for n in _MODULE_TABLES if n in d)
            hooks = tuple(d[n] for n in _MODULE_HOOKS if n in d)
            get_plain = operator.itemgetter(*plain) if plain else (lambda d: ())
            self.entries.append((d, get_plain, tensors, tables, hooks))
            self.plain_names.append(plain)
        self.stale = False
        self.structure = None
        self.structure = self._structure()

    def retyped(self) -> bool:
        """Whether an attribute watched as a plain value now holds something else (a cache that was None when the
        layout was made and holds a tensor now): a new layout then watches it as a tensor. Checked on a key's miss
        only, so a tensor there never makes every step a new key."""
        for (d, *_), names in zip(self.entries, self.plain_names):
            for n in names:
                if type(d.get(n)) not in PLAIN:
                    return True
        return False

    def _structure(self) -> tuple:
        structure = []
        for d, _, _, tables, _ in self.entries:
            structure.append(len(d))
            structure.extend(tuple(map(id, t.values())) for t in tables)
        return tuple(structure)

    def state(self) -> tuple:
        """The watched state (hashable, unless a watched plain attribute now holds something unhashable: then
        ``hash`` raises TypeError and the caller builds a new layout)."""
        parts = [tuple([p.requires_grad for p in self.parameters])]
        structure = []
        add = parts.append
        for d, get_plain, tensors, tables, hooks in self.entries:
            try:
                add(get_plain(d))
            except KeyError:  # a watched attribute was deleted
                add(None)
            for n in tensors:
                add(_tensor_state(d.get(n)))
            structure.append(len(d))
            for t in tables:
                structure.append(tuple(map(id, t.values())))
            for h in hooks:
                add(len(h))
        structure = tuple(structure)
        self.stale = structure != self.structure
        add(structure)
        return tuple(parts)


def _global_hooks() -> tuple:
    return tuple(len(getattr(_module_globals, n, ())) for n in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                                                "_global_backward_hooks",
                                                                "_global_backward_pre_hooks"))


class _Plan:
    """One traced graph and what it is called with: the parameters, then the buffers (their identities are part of
    the key, so the lists stay valid as long as the plan is used)."""

    def __init__(self, graph, params, buffers, used, names, grad_index, n_out, own_index):
        self.graph, self.params, self.used, self.n_out = graph, params, used, n_out
        self.own_index = own_index  # the loss module's own parameters: their gradients are set (None or a value)
        self.tensors = params + buffers
        self.names, self.grad_index = names, grad_index  # to run the eager step beside it again (recheck)
        self.replays = 0


class _Players(nn.Module):
    """A loss module and the modules it uses without owning them (the other player of a two-player objective), as
    one module: what is traced, watched and restored."""

    def __init__(self, loss_module: nn.Module, others):
        super().__init__()
        self.loss, self.others = loss_module, nn.ModuleList(others)

    def forward(self, *inputs):
        return self.loss(*inputs)


class TracedSteps:
    """``step(x, y)``: the loss of ``loss_module`` on (x, y) (called as ``loss_module(x)`` when y is None), detached,
    with the ``.grad`` of its parameters set to the gradient of the loss (divided by the batch size B when
    ``per_point``; None where the loss does not use a parameter), from a graph traced for this key, or None when this
    step is to run eagerly (the caller then runs the ordinary step). A loss module may return a tuple: its first
    element is differentiated, all are returned (detached). ``others`` are modules the loss uses without owning them
    (the other player): their parameters and buffers are inputs of the graph and watched like the loss's, and get no
    gradients. The optimizer's ``zero_grad`` and ``step`` stay the caller's."""

    def __init__(self, loss_module: nn.Module, objective, trace_after: int = TRACE_AFTER, autocast=None,
                 others=(), per_point: bool = True):
        self.loss_module, self.objective, self.per_point = loss_module, objective, per_point
        self.root = _Players(loss_module, others) if others else loss_module
        self.autocast = autocast or contextlib.nullcontext  # the run's precision (zoo.networks.precision.autocast)
        self.trace_after = max(1, int(trace_after))
        self.plans = {}  # key -> _Plan, or the reason (str) this key runs eagerly
        self.uses = collections.Counter()
        self.layout = _Layout(self.root, objective)
        self.pending = set()  # keys whose plan is checked against the eager step at its next use
        self.traced_steps = 0  # steps replayed from a graph (for metrics.jsonl)

    # ---------------------------------------------------------------------------------------------- the key
    def key(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> tuple:
        return (x.shape, x.dtype, x.device, None if y is None else (y.shape, y.dtype, y.device),
                torch.is_grad_enabled(), torch.get_default_dtype(), _validation_flags(), _global_hooks(),
                self.layout.state())

    # ---------------------------------------------------------------------------------------------- a step
    def step(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        key = self.key(x, y)
        try:
            plan = self.plans.get(key)
            rebuild = self.layout.stale or (plan is None and self.layout.retyped())
        except TypeError:  # a watched attribute now holds an unhashable value
            plan, rebuild = None, True
        if rebuild:  # the structure changed: watch the modules as they are now
            self.layout = _Layout(self.root, self.objective)
            key = self.key(x, y)
            plan = self.plans.get(key)
        if plan is None:
            if len(self.uses) > MAX_KEYS_COUNTED:  # keys seen once each (KL warm-up's weights) are not kept forever
                self.uses.clear()
            self.uses[key] += 1
            if self.uses[key] < self.trace_after:
                return None
            return self._trace_and_check(key, x, y)
        if isinstance(plan, str):
            return None
        plan.replays += 1
        if key in self.pending or plan.replays % RECHECK_EVERY == 0:
            self.pending.discard(key)
            return self._recheck(key, plan, x, y)
        return self._replay(plan, x, y)

    def recheck(self):
        """Check each plan against the eager step again at its next use (as every RECHECK_EVERY replays)."""
        self.pending = {k for k, p in self.plans.items() if isinstance(p, _Plan)}

    def reasons(self) -> list:
        """Why keys run eagerly (one line each; empty when every traced key replays)."""
        return sorted({p for p in self.plans.values() if isinstance(p, str)})

    def _tensors(self):
        """Names and tensors of the graph's inputs after x[, y]: every parameter, then every buffer; and the number
        of parameters."""
        params = list(self.root.named_parameters())
        named = params + list(self.root.named_buffers())
        return [n for n, _ in named], [t for _, t in named], len(params)

    @staticmethod
    def _inputs(x, y):
        return (x,) if y is None else (x, y)

    def _replay(self, plan: _Plan, x, y):
        params = plan.params
        with torch.no_grad():
            out = plan.graph(*self._inputs(x, y), *plan.tensors)
        for i in plan.own_index:  # as the optimizer's zero_grad(set_to_none=True)
            params[i].grad = None
        for i, g in zip(plan.used, out[plan.n_out:]):
            params[i].grad = g
        self.traced_steps += 1
        return out[0] if plan.n_out == 1 else tuple(out[:plan.n_out])

    def _snapshot(self):
        """The Python attributes of every module and of the objective (the contents of the modules' parameter and buffer
        dicts included), and the buffers' values: what an eager call or a trace may change besides the gradients."""
        modules = list(self.root.modules())
        attrs = [(o, dict(getattr(o, "__dict__", {}))) for o in modules + [self.objective]]
        tables = [(t, dict(t)) for m in modules for t in (m._parameters, m._buffers)]
        buffers = [(b, b.detach().clone()) for b in self.root.buffers()]
        return attrs, tables, buffers

    @staticmethod
    def _restore(snapshot):
        attrs, tables, buffers = snapshot
        for obj, saved in attrs:
            obj.__dict__.clear()
            obj.__dict__.update(saved)
        for table, saved in tables:  # a failed trace can leave fake tensors in them (tied modules)
            table.clear()
            table.update(saved)
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)

    def _joint(self, names, grad_index, n_inputs, used: list, n_out: list):
        """(x[, y], *parameters, *buffers) -> (the loss module's outputs, detached; the gradients of its loss, per
        point when ``per_point``, of the parameters that get one); ``used`` receives the indices of those parameters
        and ``n_out`` the number of outputs."""
        from torch.func import functional_call

        root, per_point = self.root, self.per_point

        def joint(*args):
            xs, ts = args[:n_inputs], args[n_inputs:]
            with self.autocast():  # the forward under the run's precision, the backward outside it (as eagerly)
                out = functional_call(root, dict(zip(names, ts)), xs)
            outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            loss = outs[0] / xs[0].shape[0] if per_point else outs[0]
            grads = torch.autograd.grad(loss, [ts[i] for i in grad_index], allow_unused=True)
            used[:] = [i for i, g in zip(grad_index, grads) if g is not None]
            n_out[:] = [len(outs)]
            return tuple(o.detach() for o in outs) + tuple(g for g in grads if g is not None)

        return joint

    def _trace_and_check(self, key, x, y):
        """Trace this key, check the graph against the eager step from the same RNG and state, and return the step's
        outputs from the graph (gradients set), or record why the key stays eager and return None (state restored,
        so the caller's eager step is the step)."""
        from torch.fx.experimental.proxy_tensor import make_fx

        device = x.device
        names, tensors, n_params = self._tensors()
        own = {id(p) for p in self.loss_module.parameters()}
        own_index = [i for i in range(n_params) if id(tensors[i]) in own]
        grad_index = [i for i in own_index if tensors[i].requires_grad]
        inputs = self._inputs(x, y)
        used, n_out = [], []
        joint = self._joint(names, grad_index, len(inputs), used, n_out)
        snapshot, rng = self._snapshot(), _rng_state(device)
        try:
            eager = joint(*inputs, *tensors)  # the eager step, for comparison
            eager_used = list(used)
            self._restore(snapshot)
            graph = make_fx(joint, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs, *tensors)
            self._restore(snapshot)  # a trace leaves no Python state behind (caches filled with fake tensors)
            graph.graph.eliminate_dead_code()  # random operations count as impure: the draws are kept
            graph.recompile()
        except Exception as e:  # noqa: BLE001 -- any failure to trace means: run this key eagerly
            self._restore(snapshot)
            _set_rng_state(device, rng)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            self.plans[key] = f"cannot be traced ({type(e).__name__}: {first})"
            return None
        plan = _Plan(graph, tensors[:n_params], tensors[n_params:], list(used), names, grad_index, n_out[0],
                     own_index)
        return self._replay_if_identical(key, plan, x, y, eager, eager_used, snapshot, rng,
                                         "the traced graph does not reproduce the eager step bit for bit")

    def _recheck(self, key, plan: _Plan, x, y):
        """Run the eager step beside the plan again (from the same RNG and state): a change of state the key does not
        watch (a global a user's program reads, an attribute of a plain object) shows up here as a difference."""
        inputs = self._inputs(x, y)
        used, n_out = [], []
        joint = self._joint(plan.names, plan.grad_index, len(inputs), used, n_out)
        snapshot, rng = self._snapshot(), _rng_state(x.device)
        try:
            eager = joint(*inputs, *plan.tensors)
        finally:
            self._restore(snapshot)
        return self._replay_if_identical(key, plan, x, y, eager, list(used), snapshot, rng,
                                         "the traced graph no longer reproduced the eager step (a state the key does "
                                         "not watch changed); eager from then on")

    def _replay_if_identical(self, key, plan, x, y, eager, eager_used, snapshot, rng, reason):
        _set_rng_state(x.device, rng)
        result = self._replay(plan, x, y)
        outs = (result,) if plan.n_out == 1 else result
        params = plan.params
        same = (plan.used == eager_used and len(outs) == plan.n_out
                and all(_identical(a, b) for a, b in zip(outs, eager[:plan.n_out]))
                and all(_identical(params[i].grad, g) for i, g in zip(plan.used, eager[plan.n_out:])))
        if not same:
            self.traced_steps -= 1
            self._restore(snapshot)
            _set_rng_state(x.device, rng)
            for i in plan.own_index:
                params[i].grad = None
            self.plans[key] = reason
            return None
        self.plans[key] = plan
        return result


def _identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.device.type == "meta":  # no values to compare
        return True
    return bool(torch.equal(a, b))
