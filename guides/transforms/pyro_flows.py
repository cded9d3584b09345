r"""Pyro's planar, radial and Householder flows, plain and conditional, with a cache that cannot go stale.

The maps, parameterisations and log-determinants are Pyro's own (:mod:`pyro.distributions.transforms`); only the
one-entry cache differs. Pyro's keeps the last :math:`(x, y)` and returns the remembered :math:`y` whenever the same
:math:`x` tensor comes back, even after an optimiser step; here the cache is
:class:`~zoo.transforms.cache.FreshCache`: a pair is used only while the parameters (of the transform, or of the
hypernetwork and the context of a conditioned transform), :math:`x` and :math:`y` are unchanged, and a lookup only
returns the caller's own tensor. Samples drawn through a planar or radial flow can still be scored (by looking
:math:`x` up from :math:`y`), and the log-determinant after a forward call still costs nothing.
"""
from functools import partial

import pyro.distributions.transforms as T
from pyro.distributions.transforms.householder import ConditionedHouseholder as _PyroConditionedHouseholder
from pyro.distributions.transforms.planar import ConditionedPlanar as _PyroConditionedPlanar
from pyro.distributions.transforms.radial import ConditionedRadial as _PyroConditionedRadial

from zoo.transforms.cache import FreshCache

__all__ = [
    "ConditionedPlanar",
    "Planar",
    "ConditionalPlanar",
    "ConditionedRadial",
    "Radial",
    "ConditionalRadial",
    "ConditionedHouseholder",
    "Householder",
    "ConditionalHouseholder",
]

_REZENDE = """
    References:

    [1] Danilo Jimenez Rezende, Shakir Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
    [arXiv:1505.05770]
"""
_TOMCZAK = """
    References:

    [1] Jakub M. Tomczak, Max Welling. Improving Variational Auto-Encoders using Householder Flow. NeurIPS workshop
    on Bayesian Deep Learning 2016. [arXiv:1611.09630]
"""


class ConditionedPlanar(FreshCache, _PyroConditionedPlanar):
    __doc__ = r"""
    A planar flow step with given parameters :math:`(b, \mathbf{u}, \mathbf{w})` (a callable returning them, as made
    by :meth:`ConditionalPlanar.condition`),

        :math:`\mathbf{y} = \mathbf{x} + \hat{\mathbf{u}}\tanh(\mathbf{w}^T\mathbf{x} + b)`,
        :math:`\log|\det J| = \log|1 + \hat{\mathbf{u}}^T h'(\mathbf{w}^T\mathbf{x} + b)\,\mathbf{w}|`,

    with :math:`\hat{\mathbf{u}}` the projection of :math:`\mathbf{u}` that keeps :math:`\mathbf{w}^T\hat{\mathbf{u}}
    > -1` (Pyro's :class:`~pyro.distributions.transforms.ConditionedPlanar`). No closed-form inverse: the output of
    the last forward call is inverted from the cache while the parameters and the tensors are unchanged.

    :param params: a callable returning ``(b, u, w)``, or that tuple.
    :param sources: what the parameters are computed from (the hypernetwork module and the context), for the cache.
    """ + _REZENDE

    def __init__(self, params, sources=None):
        super().__init__(params)
        self._cache_sources = sources if sources is not None or callable(params) else tuple(params)


class Planar(FreshCache, T.Planar):
    __doc__ = r"""
    A planar flow step with learned parameters :math:`b\in\mathbb{R}`, :math:`\mathbf{u}, \mathbf{w}\in\mathbb{R}^D`,

        :math:`\mathbf{y} = \mathbf{x} + \hat{\mathbf{u}}\tanh(\mathbf{w}^T\mathbf{x} + b)`,

    Pyro's :class:`~pyro.distributions.transforms.Planar` with the cache of :mod:`guides.transforms.pyro_flows`.

    Example usage:

    >>> base_dist = dist.Normal(torch.zeros(10), torch.ones(10)).to_event(1)
    >>> flow_dist = dist.TransformedDistribution(base_dist, [Planar(10)])
    >>> flow_dist.log_prob(flow_dist.rsample((5,))).shape
    torch.Size([5])

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    """ + _REZENDE


class ConditionalPlanar(T.ConditionalPlanar):
    __doc__ = r"""
    A conditional planar flow step: :math:`(b, \mathbf{u}, \mathbf{w})` are the outputs of a function ``nn`` of a
    context (Pyro's :class:`~pyro.distributions.transforms.ConditionalPlanar`); ``condition(context)`` returns a
    :class:`ConditionedPlanar` whose cache watches ``nn``'s parameters and the context.

    :param nn: a callable taking the context and returning ``(b, u, w)`` of sizes ``1, D, D``.
    :type nn: callable
    """ + _REZENDE

    def condition(self, context):
        return ConditionedPlanar(partial(self._params, context), sources=(self, context))


class ConditionedRadial(FreshCache, _PyroConditionedRadial):
    __doc__ = r"""
    A radial flow step with given parameters :math:`(\mathbf{x}_0, \alpha', \beta')` (a callable returning them, as
    made by :meth:`ConditionalRadial.condition`), with :math:`\alpha = \mathrm{softplus}(\alpha')`,
    :math:`\beta = -\alpha + \mathrm{softplus}(\beta')`, :math:`r = \|\mathbf{x} - \mathbf{x}_0\|`,
    :math:`h = 1/(\alpha + r)`,

        :math:`\mathbf{y} = \mathbf{x} + \beta h(\mathbf{x} - \mathbf{x}_0)`,
        :math:`\log|\det J| = (D - 1)\log(1 + \beta h) + \log(1 + \beta h - \beta h^2 r)`

    (Pyro's :class:`~pyro.distributions.transforms.ConditionedRadial`). No closed-form inverse: the output of the last
    forward call is inverted from the cache while the parameters and the tensors are unchanged.

    :param params: a callable returning ``(x0, alpha_prime, beta_prime)``, or that tuple.
    :param sources: what the parameters are computed from (the hypernetwork module and the context), for the cache.
    """ + _REZENDE

    def __init__(self, params, sources=None):
        super().__init__(params)
        self._cache_sources = sources if sources is not None or callable(params) else tuple(params)


class Radial(FreshCache, T.Radial):
    __doc__ = r"""
    A radial flow step with learned parameters :math:`\mathbf{x}_0\in\mathbb{R}^D`, :math:`\alpha', \beta'`,

        :math:`\mathbf{y} = \mathbf{x} + \beta h(\alpha, r)(\mathbf{x} - \mathbf{x}_0)`,

    Pyro's :class:`~pyro.distributions.transforms.Radial` with the cache of :mod:`guides.transforms.pyro_flows`.

    Example usage:

    >>> base_dist = dist.Normal(torch.zeros(10), torch.ones(10)).to_event(1)
    >>> flow_dist = dist.TransformedDistribution(base_dist, [Radial(10)])
    >>> flow_dist.log_prob(flow_dist.rsample((5,))).shape
    torch.Size([5])

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    """ + _REZENDE


class ConditionalRadial(T.ConditionalRadial):
    __doc__ = r"""
    A conditional radial flow step: :math:`(\mathbf{x}_0, \alpha', \beta')` are the outputs of a function ``nn`` of a
    context (Pyro's :class:`~pyro.distributions.transforms.ConditionalRadial`); ``condition(context)`` returns a
    :class:`ConditionedRadial` whose cache watches ``nn``'s parameters and the context.

    :param nn: a callable taking the context and returning ``(x0, alpha_prime, beta_prime)`` of sizes ``D, 1, 1``.
    :type nn: callable
    """ + _REZENDE

    def condition(self, context):
        return ConditionedRadial(partial(self._params, context), sources=(self, context))


class ConditionedHouseholder(FreshCache, _PyroConditionedHouseholder):
    __doc__ = r"""
    A Householder flow with given reflection vectors :math:`\mathbf{u}_1, \dots, \mathbf{u}_K` (a callable returning
    them, as made by :meth:`ConditionalHouseholder.condition`),

        :math:`\mathbf{y} = H_K\cdots H_1\mathbf{x},\qquad H_k = I - 2\frac{\mathbf{u}_k\mathbf{u}_k^T}
        {\|\mathbf{u}_k\|^2},\qquad \log|\det J| = 0`,

    inverted by applying the reflections in reverse order (Pyro's
    :class:`~pyro.distributions.transforms.ConditionedHouseholder`).

    :param u_unnormed: a callable returning the vectors, shape ``(..., K, D)``, or that tensor.
    :param sources: what the vectors are computed from (the hypernetwork module and the context), for the cache.
    """ + _TOMCZAK

    def __init__(self, u_unnormed=None, sources=None):
        super().__init__(u_unnormed)
        self._cache_sources = sources if sources is not None or callable(u_unnormed) else (u_unnormed,)


class Householder(FreshCache, T.Householder):
    __doc__ = r"""
    A Householder flow with learned reflection vectors :math:`\mathbf{u}_1, \dots, \mathbf{u}_K\in\mathbb{R}^D`,

        :math:`\mathbf{y} = H_K\cdots H_1\mathbf{x},\qquad H_k = I - 2\frac{\mathbf{u}_k\mathbf{u}_k^T}
        {\|\mathbf{u}_k\|^2}`,

    volume preserving; Pyro's :class:`~pyro.distributions.transforms.Householder` with the cache of
    :mod:`guides.transforms.pyro_flows`.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param count_transforms: the number :math:`K` of reflections.
    :type count_transforms: int
    """ + _TOMCZAK


class ConditionalHouseholder(T.ConditionalHouseholder):
    __doc__ = r"""
    A conditional Householder flow: the reflection vectors are the output of a function ``nn`` of a context (Pyro's
    :class:`~pyro.distributions.transforms.ConditionalHouseholder`); ``condition(context)`` returns a
    :class:`ConditionedHouseholder` whose cache watches ``nn``'s parameters and the context.

    :param input_dim: the dimension :math:`D` of the input (and output) variable.
    :type input_dim: int
    :param nn: a callable taking the context and returning the :math:`K` vectors (a tensor of size :math:`D` for
        :math:`K = 1`, else a tuple).
    :type nn: callable
    :param count_transforms: the number :math:`K` of reflections.
    :type count_transforms: int
    """ + _TOMCZAK

    def condition(self, context):
        return ConditionedHouseholder(partial(self._u_unnormed, context), sources=(self, context))
