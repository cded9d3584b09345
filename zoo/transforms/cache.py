r"""A one-entry transform cache that cannot return stale values: :class:`FreshCache` and :class:`CachedTransform`.

torch's ``Transform(cache_size=1)`` remembers its last pair :math:`(x, y)` and answers ``t(x)`` with the remembered
:math:`y` (and ``t.inv(y)`` with :math:`x`) whenever the *same tensor object* comes back. After an optimiser step on
the transform's parameters (or an in-place change of :math:`x`) that answer is stale: a loop that scores a fixed
tensor gets the first value again and again, and a second ``backward`` runs into the freed graph of the first call
("Trying to backward through the graph a second time"). Pyro's planar, radial, Householder and IAF flows and the
zoo's Sylvester flows all use that cache, and the non-invertible ones need it: they can only score the samples they
produced, by looking :math:`x` up from :math:`y`.

:class:`FreshCache` keeps what that lookup needs and drops the rest. With :math:`\theta` the tensors the map depends
on (its parameters, or those of the hypernetwork and the context of a conditioned transform) and :math:`v(\cdot)`
the in-place version counter autograd keeps on every tensor, a remembered pair is used only while

    :math:`v(\theta),\ v(x),\ v(y)` are those at the call that made it,

and a lookup only ever returns the *caller's own* tensor: ``t.inv(y)`` returns the :math:`x` that was passed to
``t(x)`` (and ``t(x)`` the :math:`y` that was passed to ``t.inv(y)``), never a tensor the transform computed, so no
graph is reused. Every other call computes afresh. The quantities the log-determinant needs (``_cached_logDetJ``,
``_cached_log_scale``) are remembered by the class itself for the last pair, as before, so the log-det right after a
forward call (``TransformedDistribution.log_prob`` of a sample) still costs no extra pass; it is recomputed when the
pair is no longer current, or when it was made without autograd and is now needed with it.

Updates made through ``.data`` bypass the version counters (as they bypass autograd's own checks) and are not seen.
"""
import torch
from torch import nn
from torch.distributions import Transform

__all__ = ["FreshCache", "CachedTransform"]


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors keep no version counter (and cannot be changed outside inference mode)
        return -1


def _submodules(module: nn.Module) -> list:
    """``list(module.modules())``, remembered on the module: walking the tree at every call costs more than the flow
    step's bookkeeping should (the set of sub-modules of a flow step does not change once it is used)."""
    mods = module.__dict__.get("_fresh_cache_submodules")
    if mods is None:
        mods = list(module.modules())
        module.__dict__["_fresh_cache_submodules"] = mods
    return mods


def _tensors(sources):
    """The tensors of ``sources`` in a fixed order: tensors themselves, and the parameters of modules (read from each
    sub-module's own table, so a parameter replaced by another object is seen)."""
    for s in sources:
        if isinstance(s, torch.Tensor):
            yield s
        elif isinstance(s, nn.Module):
            for m in _submodules(s):
                for p in m._parameters.values():
                    if p is not None:
                        yield p


class _Entry:
    """A remembered pair: ``forward`` says which of x (True) or y (False) the caller gave."""

    __slots__ = ("x", "y", "forward", "grad", "x_version", "y_version", "params")

    def __init__(self, x, y, forward, params):
        self.x, self.y, self.forward = x, y, forward
        self.grad = torch.is_grad_enabled()
        self.x_version, self.y_version = _version(x), _version(y)
        self.params = [(t, _version(t)) for t in params]


class FreshCache:
    """Mixin placed before a ``torch.distributions.Transform`` subclass built with ``cache_size=1``: the one-entry
    cache described in :mod:`zoo.transforms.cache`.

    The map's tensors are the transform's own ``parameters()`` (a ``TransformModule``), or, when
    ``_cache_sources`` is set (a conditioned transform: ``(hypernetwork_module, context)``), the parameters of the
    modules and the tensors listed there."""

    _cache_sources = None

    # ------------------------------------------------------------------ what the map depends on
    def _cache_tensors(self):
        sources = self.__dict__.get("_cache_sources")
        if sources is None:
            sources = (self,) if isinstance(self, nn.Module) else ()
        return _tensors(sources)

    def _current(self, e) -> bool:
        """Whether the remembered pair still holds: the same parameters, unchanged, and x, y unchanged."""
        if _version(e.x) != e.x_version or _version(e.y) != e.y_version:
            return False
        recorded = iter(e.params)
        for t in self._cache_tensors():
            t0, v0 = next(recorded, (None, None))
            if t is not t0 or _version(t) != v0:
                return False
        return next(recorded, None) is None

    def _remember(self, x, y, forward: bool):
        self.__dict__["_fresh_entry"] = _Entry(x, y, forward, self._cache_tensors())

    # ------------------------------------------------------------------ torch's cache protocol
    @property
    def _cached_x_y(self):
        e = self.__dict__.get("_fresh_entry")
        if e is not None and self._current(e):
            return e.x, e.y
        return None, None

    @_cached_x_y.setter
    def _cached_x_y(self, value):  # Transform.__init__ and clear_cache set (None, None)
        x, y = value
        self.__dict__["_fresh_entry"] = None if x is None else _Entry(x, y, True, self._cache_tensors())

    def __call__(self, x):
        if self._cache_size == 0:
            return self._call(x)
        e = self.__dict__.get("_fresh_entry")
        if e is not None and not e.forward and x is e.x and self._current(e):
            return e.y  # the caller's own y, which t.inv(y) mapped to this x
        y = self._call(x)
        self._remember(x, y, True)
        return y

    def _inv_call(self, y):
        if self._cache_size == 0:
            return self._inverse(y)
        e = self.__dict__.get("_fresh_entry")
        if e is not None and e.forward and y is e.y and self._current(e):
            return e.x  # the caller's own x, which t(x) mapped to this y
        x = self._inverse(y)
        self._remember(x, y, False)
        return x

    def log_abs_det_jacobian(self, x, y):
        e = self.__dict__.get("_fresh_entry")
        if (e is not None and not e.grad and x is e.x and y is e.y and torch.is_grad_enabled()
                and self._current(e)):
            self._call(x)  # the pair was made without autograd: its log-det quantities again, with it
            e.grad = True
        return super().log_abs_det_jacobian(x, y)

    def __getstate__(self):
        """Copies and pickles leave the pair and the log-det quantities behind (tensors of a graph, which
        ``copy.deepcopy`` refuses)."""
        state = super().__getstate__()
        state["_fresh_entry"] = None
        for key in ("_cached_logDetJ", "_cached_log_scale"):
            if key in state:
                state[key] = None
        return state


class CachedTransform(FreshCache, Transform):
    """A parameter-free ``torch.distributions.Transform`` (``biject_to(constraint)``, a ``ReshapeTransform``, ...)
    with the cache of :class:`FreshCache`: ``t.inv(t(x))`` returns ``x`` itself, which a non-invertible flow
    underneath needs to score its own sample, and nothing computed is ever returned twice.

    :param inner: the transform, without a cache of its own.
    """

    def __init__(self, inner: Transform):
        if inner._cache_size:
            raise ValueError("CachedTransform wraps an uncached transform (cache_size=0)")
        super().__init__(cache_size=1)
        self.inner = inner
        self._cache_sources = ()

    @property
    def domain(self):
        return self.inner.domain

    @property
    def codomain(self):
        return self.inner.codomain

    @property
    def bijective(self):
        return self.inner.bijective

    @property
    def sign(self):
        return self.inner.sign

    def _call(self, x):
        return self.inner(x)

    def _inverse(self, y):
        return self.inner.inv(y)

    def log_abs_det_jacobian(self, x, y):
        return self.inner.log_abs_det_jacobian(x, y)

    def forward_shape(self, shape):
        return self.inner.forward_shape(shape)

    def inverse_shape(self, shape):
        return self.inner.inverse_shape(shape)

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r})"
