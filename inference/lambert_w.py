r"""
The Lambert W function (principal branch) and the Wright omega function in torch, vectorised, float32 and float64,
differentiable.

:math:`W(x)` solves :math:`W e^{W} = x` with :math:`W \ge -1` (the principal branch, defined for
:math:`x \ge -1/e`). :math:`\omega(y) = W(e^y)` solves :math:`\omega + \log\omega = y`; it is what the conjugate of
Jeffrey's divergence needs, :math:`f^*(t) = \omega(1-t) + 1/\omega(1-t) + t - 2`, where :math:`e^{1-t}` would
overflow for very negative :math:`t` but :math:`\omega(1 - t)` does not.

Both are computed by a few Halley steps from a good start, the iterations detached from the graph; the gradient is
attached analytically through a :class:`torch.autograd.Function` whose backward is itself differentiable:

    :math:`W'(x) = \frac{W(x)}{x(1 + W(x))} = \frac{e^{-W(x)}}{1 + W(x)}`,
    :math:`\omega'(y) = \frac{\omega(y)}{1 + \omega(y)}`.

Starting points:

* near the branch point, :math:`x < -1/4`: the series :math:`W = -1 + p - p^2/3 + 11 p^3/72`,
  :math:`p = \sqrt{2(ex + 1)}` (Corless et al. 1996, eq. 4.22);
* :math:`-1/4 \le x \le e`: :math:`\log(1 + x)`;
* :math:`x > e`, i.e. :math:`y = \log x > 1`: the asymptotic :math:`y - \log y + \log y / y` (Corless et al. eq.
  4.19), refined by Halley's method on :math:`h(w) = w + \log w - y` in log space, so :math:`x = e^{y}` itself is
  never formed (any float :math:`y`, e.g. :math:`y = 10^4`).

Halley converges cubically, so a fixed number of steps (5 in float64, 3 in float32) reaches the rounding level
everywhere from these starts; the residual :math:`|W e^W - x|` is checked in the tests.

References:

[1] R. M. Corless, G. H. Gonnet, D. E. G. Hare, D. J. Jeffrey, D. E. Knuth. On the Lambert W function.
Advances in Computational Mathematics 5 (1996).
"""
import math

import torch

__all__ = ["lambert_w", "wright_omega"]

_STEPS = {torch.float64: 5, torch.float32: 3}  # Halley steps: cubic convergence from starts within ~20 %
_INV_E = math.exp(-1.0)


def _halley_direct(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Halley steps on w e^w - x = 0 (for -1/e <= x <= e, where e^w stays small); w = -1 (the branch point) is kept."""
    for _ in range(_STEPS.get(x.dtype, 5)):
        ew = torch.exp(w)
        r = w * ew - x
        wp1 = w + 1
        at_branch = wp1 == 0
        wp1 = torch.where(at_branch, torch.ones_like(wp1), wp1)
        step = r / (ew * wp1 - (w + 2) * r / (2 * wp1))
        w = torch.where(at_branch, w, w - step)
    return w


def _halley_log(y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Halley steps on h(w) = w + log w - y = 0 (for y > 1, where w > 1): h' = 1 + 1/w, h'' = -1/w^2."""
    for _ in range(_STEPS.get(y.dtype, 5)):
        h = w + torch.log(w) - y
        d1 = 1 + 1 / w
        d2 = -1 / (w * w)
        w = w - h / (d1 - h * d2 / (2 * d1))
    return w


def _omega_solve(y: torch.Tensor) -> torch.Tensor:
    """omega(y) = W(e^y), no gradient: log-space Halley where y > 1, direct Halley on x = e^y elsewhere."""
    # both branches on every element (no host-side test of which are needed: no device synchronisation per step)
    big = y > 1
    yb = torch.where(big, y, torch.full_like(y, 2.0))
    ly = torch.log(yb)
    w_big = _halley_log(yb, yb - ly + ly / yb)
    x = torch.exp(torch.where(big, torch.zeros_like(y), y))  # <= e
    return torch.where(big, w_big, _halley_direct(x, torch.log1p(x)))


def _lambert_solve(x: torch.Tensor) -> torch.Tensor:
    """W(x), no gradient; NaN below -1/e."""
    big = x > math.e
    y = torch.log(torch.where(big, x, torch.full_like(x, math.e ** 2)))
    w_big = _halley_log(y, y - torch.log(y) + torch.log(y) / y)

    xs = torch.where(big, torch.zeros_like(x), x)
    p = torch.sqrt((2 * (math.e * xs + 1)).clamp(min=0))
    near_branch = -1 + p - p * p / 3 + 11.0 / 72.0 * p ** 3
    start = torch.where(xs < -0.25, near_branch, torch.log1p(xs.clamp(min=-0.25)))
    w_small = _halley_direct(xs, start)
    w_small = torch.where(xs <= -_INV_E, torch.full_like(xs, -1.0), w_small)  # the branch point (and rounding to it)
    w = torch.where(big, w_big, w_small)
    return torch.where(x < -_INV_E * (1 + 4 * torch.finfo(x.dtype).eps), torch.full_like(x, float("nan")), w)


class _LambertW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        w = _lambert_solve(x.detach())
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * torch.exp(-w) / (1 + w)


class _WrightOmega(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        w = _omega_solve(y.detach())
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * w / (1 + w)


def lambert_w(x: torch.Tensor) -> torch.Tensor:
    r"""The principal branch :math:`W(x)` of the Lambert W function, :math:`W e^W = x`, for :math:`x \ge -1/e`
    (NaN below), elementwise; differentiable with :math:`W'(x) = e^{-W}/(1 + W)` (infinite at :math:`x = -1/e`)."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return _LambertW.apply(x)


def wright_omega(y: torch.Tensor) -> torch.Tensor:
    r""":math:`\omega(y) = W(e^y)` for real :math:`y`, the solution of :math:`\omega + \log\omega = y`, computed
    without forming :math:`e^y` (no overflow for large :math:`y`); differentiable with
    :math:`\omega' = \omega / (1 + \omega)`."""
    y = torch.as_tensor(y)
    if not y.is_floating_point():
        y = y.to(torch.get_default_dtype())
    return _WrightOmega.apply(y)
