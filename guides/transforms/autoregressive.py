"""Affine autoregressive flow (IAF) with a dtype- and device-agnostic inverse.

Pyro's :class:`~pyro.distributions.transforms.AffineAutoregressive` has a correct log-determinant, but its inverse
starts from ``torch.zeros(x_size, device=y.device)`` (default dtype, so a float64 flow fails with "mat1 and mat2 must
have the same dtype" unless float64 is the global default) and indexes a Python list with the entries of the
permutation tensor (``.item()``, impossible on the ``meta`` device). The subclasses here only replace the inverse:
``D`` fixed-point sweeps ``x <- (y - mu(x)) / sigma(x)`` from ``x = 0``. Because ``mu_i`` and ``sigma_i`` depend only on
the coordinates before ``i`` in the autoregressive order, after sweep ``k`` the first ``k`` coordinates in that order
are exact, so ``D`` sweeps give the exact inverse (the same ``D`` network calls as Pyro's loop), whatever the order.

The one-entry cache is :class:`zoo.transforms.cache.FreshCache` (Pyro's returns its last output for the same input
tensor even after an optimiser step): a sample is still scored without the ``D`` inverse passes, and a fixed tensor
scored again after a step is computed afresh. A conditioned transform's cache watches the conditional MADE's
parameters and the context.
"""
from functools import partial

import torch
from pyro.distributions.transforms import AffineAutoregressive as _PyroAffineAutoregressive
from pyro.distributions.transforms import ConditionalAffineAutoregressive as _PyroConditionalAffineAutoregressive
from pyro.distributions.util import copy_docs_from
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from pyro.distributions.transforms.utils import clamp_preserve_gradients

from zoo.transforms.cache import FreshCache

__all__ = [
    "AffineAutoregressive",
    "ConditionalAffineAutoregressive",
    "affine_autoregressive",
    "conditional_affine_autoregressive",
]


@copy_docs_from(_PyroAffineAutoregressive)
class AffineAutoregressive(FreshCache, _PyroAffineAutoregressive):
    def _inverse(self, y):
        """
        :param y: the output of the bijection
        :type y: torch.Tensor

        Inverts y => x by ``D`` fixed-point sweeps (exact after ``D``); dtype and device follow ``y``.
        """
        x = torch.zeros_like(y)
        log_scale = None
        for _ in range(y.size(-1)):
            mean, log_scale = self.arn(x)
            log_scale = clamp_preserve_gradients(log_scale, self.log_scale_min_clip, self.log_scale_max_clip)
            x = (y - mean) * torch.exp(-log_scale)
        self._cached_log_scale = log_scale
        return x

    def _inverse_stable(self, y):
        """
        :param y: the output of the bijection
        :type y: torch.Tensor

        Inverts y => x for the stable (gated) variant by ``D`` fixed-point sweeps.
        """
        x = torch.zeros_like(y)
        logit_scale = None
        for _ in range(y.size(-1)):
            mean, logit_scale = self.arn(x)
            inverse_scale = 1 + torch.exp(-logit_scale - self.sigmoid_bias)
            x = inverse_scale * y + (1 - inverse_scale) * mean
        self._cached_log_scale = self.logsigmoid(logit_scale + self.sigmoid_bias)
        return x


@copy_docs_from(_PyroConditionalAffineAutoregressive)
class ConditionalAffineAutoregressive(_PyroConditionalAffineAutoregressive):
    def condition(self, context):
        """
        Conditions on a context variable, returning a non-conditional
        :class:`~guides.transforms.autoregressive.AffineAutoregressive`.
        """
        cond_nn = partial(self.nn, context=context)
        cond_nn.permutation = cond_nn.func.permutation
        cond_nn.get_permutation = cond_nn.func.get_permutation
        transform = AffineAutoregressive(cond_nn, **self.kwargs)
        transform._cache_sources = (self.nn, context)
        return transform


def affine_autoregressive(input_dim, hidden_dims=None, permutation=None, **kwargs):
    """
    As :func:`pyro.distributions.transforms.affine_autoregressive` (hidden layers default to ``[3 * input_dim + 1]``),
    returning the fixed :class:`AffineAutoregressive`; ``permutation`` sets the autoregressive order (random if None).
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = AutoRegressiveNN(input_dim, list(hidden_dims), permutation=permutation)
    return AffineAutoregressive(arn, **kwargs)


def conditional_affine_autoregressive(input_dim, context_dim, hidden_dims=None, permutation=None, **kwargs):
    """
    As :func:`pyro.distributions.transforms.conditional_affine_autoregressive` (hidden layers default to
    ``[10 * input_dim]``; the context enters the first layer of the MADE, as in IAF), returning the fixed
    :class:`ConditionalAffineAutoregressive`; ``permutation`` sets the autoregressive order (random if None).
    """
    if hidden_dims is None:
        hidden_dims = [10 * input_dim]
    nn = ConditionalAutoRegressiveNN(input_dim, context_dim, list(hidden_dims), permutation=permutation)
    return ConditionalAffineAutoregressive(nn, **kwargs)
