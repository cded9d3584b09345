r"""
The f-divergences of f-GAN (Nowozin, Cseke & Tomioka 2016) with their convex conjugates and output activations, for
variational divergence minimisation.

For a convex, lower semi-continuous :math:`f: \mathbb{R}_+ \to \mathbb{R}` the f-divergence of :math:`P` from
:math:`Q` (densities :math:`p, q`) is

    :math:`D_f(P \| Q) = \int q(x) f\!\left(\frac{p(x)}{q(x)}\right) dx`.

With the convex conjugate :math:`f^*(t) = \sup_{u > 0} \{ u t - f(u) \}` (Fenchel), every critic
:math:`T: \mathcal{X} \to \operatorname{dom} f^*` gives the lower bound (Nguyen, Wainwright & Jordan 2010)

    :math:`D_f(P \| Q) \ge F(T) = \mathbb{E}_{x \sim P}[T(x)] - \mathbb{E}_{x \sim Q}[f^*(T(x))]`,

tight at :math:`T^*(x) = f'(p(x)/q(x))`. f-GAN writes the critic as :math:`T(x) = g_f(V(x))`: a network
:math:`V` with a raw real output and an output activation :math:`g_f: \mathbb{R} \to \operatorname{dom} f^*`
(their Table 2), and trains the generator :math:`Q_\theta` and the critic on the saddle point
:math:`\min_\theta \max_\omega F(\theta, \omega)`. :meth:`FDivergence.bound` is the Monte Carlo estimate of
:math:`F` from the raw outputs ``v_p = V(x), x ~ P`` (data) and ``v_q = V(x), x ~ Q`` (generator).

The table (:math:`u = p/q`; every :math:`g_f` here is increasing, so :math:`V` is a monotone logit of :math:`T`):

* ``total-variation``: :math:`f(u) = \tfrac12|u - 1|`, :math:`f^*(t) = t` on :math:`|t| \le \tfrac12`,
  :math:`g_f(v) = \tfrac12\tanh v`, :math:`f'(u) = \tfrac12\operatorname{sign}(u - 1)`;
* ``kl``: :math:`f(u) = u\log u`, :math:`f^*(t) = e^{t-1}`, :math:`g_f(v) = v`, :math:`f'(u) = 1 + \log u`;
* ``reverse-kl``: :math:`f(u) = -\log u`, :math:`f^*(t) = -1 - \log(-t)` on :math:`t < 0`,
  :math:`g_f(v) = -e^{-v}`, :math:`f'(u) = -1/u`;
* ``pearson``: :math:`f(u) = (u - 1)^2`, :math:`f^*(t) = t + t^2/4` on :math:`t \ge -2` and :math:`-1` below,
  :math:`g_f(v) = v`, :math:`f'(u) = 2(u - 1)`;
* ``neyman``: :math:`f(u) = (1 - u)^2/u`, :math:`f^*(t) = 2 - 2\sqrt{1 - t}` on :math:`t < 1`,
  :math:`g_f(v) = 1 - e^{-v}`, :math:`f'(u) = 1 - u^{-2}`;
* ``squared-hellinger``: :math:`f(u) = (\sqrt u - 1)^2`, :math:`f^*(t) = t/(1 - t)` on :math:`t < 1`,
  :math:`g_f(v) = 1 - e^{-v}`, :math:`f'(u) = 1 - u^{-1/2}`;
* ``jeffrey``: :math:`f(u) = (u - 1)\log u`, :math:`f^*(t) = W(e^{1-t}) + 1/W(e^{1-t}) + t - 2`,
  :math:`g_f(v) = v`, :math:`f'(u) = 1 + \log u - 1/u`;
* ``jensen-shannon``: :math:`f(u) = u\log u - (u + 1)\log\frac{u+1}2`, :math:`f^*(t) = -\log(2 - e^t)` on
  :math:`t < \log 2`, :math:`g_f(v) = \log 2 - \log(1 + e^{-v})`, :math:`f'(u) = \log\frac{2u}{1+u}`;
* ``jensen-shannon-weighted:PI``: :math:`f(u) = \pi u\log u - m\log m` with :math:`m = 1 - \pi + \pi u`,
  :math:`f^*(t) = (1 - \pi)\log\frac{1 - \pi}{1 - \pi e^{t/\pi}}` on :math:`t < -\pi\log\pi`,
  :math:`g_f(v) = -\pi\log\pi - \log(1 + e^{-v})`, :math:`f'(u) = \pi\log(u/m)`;
* ``gan``: :math:`f(u) = u\log u - (u + 1)\log(u + 1)`, :math:`f^*(t) = -\log(1 - e^t)` on :math:`t < 0`,
  :math:`g_f(v) = -\log(1 + e^{-v})`, :math:`f'(u) = \log\frac u{u+1}`;
* ``alpha:A`` (:math:`A \ne 0, 1`): :math:`f(u) = \frac{u^A - 1 - A(u - 1)}{A(A - 1)}`,
  :math:`f^*(t) = \frac1A(1 + (A - 1)t)^{A/(A-1)} - \frac1A`, :math:`f'(u) = \frac{u^{A-1} - 1}{A - 1}`; for
  :math:`A < 1` on :math:`t < \frac1{1-A}` with :math:`g_f(v) = \frac{1 - e^{-v}}{1 - A}`, for :math:`A > 1`
  on all of :math:`\mathbb{R}` (:math:`-\frac1A` below :math:`\frac1{1-A}`) with :math:`g_f(v) = v`.

Notes on the table, each checked numerically in ``tests/inference/test_f_divergences.py``:

* **Normalisation.** :math:`f(1) = 0` for all but ``gan``, so :math:`D_f(P\|P) = 0`. The ``gan`` row is Nowozin et
  al.'s: :math:`f(1) = -\log 4` and :math:`D_f = 2\,\mathrm{JSD}(P, Q) - \log 4`, so that its bound is exactly
  Goodfellow et al.'s :math:`\mathbb{E}_P[\log D] + \mathbb{E}_Q[\log(1 - D)]` with :math:`D = \sigma(V)`. Adding
  a multiple of :math:`u - 1` to :math:`f` changes neither :math:`D_f` nor the saddle point but shifts :math:`f'`;
  the value of the optimal critic at :math:`P = Q` is :math:`f'(1)`: 1 for ``kl``, -1 for ``reverse-kl``,
  :math:`-\log 2` for ``gan``, 0 for the rest (their Table 2's last column).
* ``jensen-shannon`` is :math:`\mathrm{KL}(P\|M) + \mathrm{KL}(Q\|M) = 2\,\mathrm{JSD}(P, Q)`,
  :math:`M = (P + Q)/2` (at most :math:`\log 4`), what the :math:`f` and :math:`f^*` of Nowozin et al.'s table give:
  twice the usual JSD, mind the factor when comparing. ``jensen-shannon-weighted:PI`` is
  :math:`\pi\,\mathrm{KL}(P\|M_\pi) + (1-\pi)\,\mathrm{KL}(Q\|M_\pi)`, :math:`M_\pi = \pi P + (1-\pi) Q`, so
  ``jensen-shannon-weighted:0.5`` is half of ``jensen-shannon``.
* ``pearson`` is :math:`\int (p-q)^2/q` and ``neyman`` :math:`\int (q-p)^2/p` (finite for Gaussians only when
  :math:`\sigma_q^2 > \sigma_p^2/2`, resp. :math:`\sigma_p^2 > \sigma_q^2/2`).
* ``alpha:A`` (any real :math:`A \ne 0, 1`) is the alpha-divergence
  :math:`D = \frac{\int p^A q^{1-A} - 1}{A(A-1)}`; :math:`A \to 1` is KL(P||Q) (``kl``), :math:`A \to 0` is
  KL(Q||P) (``reverse-kl``), :math:`A = 1/2` is 2 ``squared-hellinger``, :math:`A = 2` is ``pearson`` / 2 and
  :math:`A = -1` is ``neyman`` / 2. For :math:`A > 1` the activation is the identity and :math:`f^*` is the exact
  conjugate over :math:`u > 0` on all of :math:`\mathbb{R}`: constant :math:`-f(0) = -1/A` below
  :math:`1/(1-A) = f'(0)`. The same holds for ``pearson`` below :math:`t = -2`. (Nowozin et al. write
  :math:`t + t^2/4` on all of :math:`\mathbb{R}`, the conjugate over :math:`u \in \mathbb{R}`; it is larger, so their
  bound is valid but looser where the critic goes below :math:`f'(0)`.)
* ``total-variation``: the optimum :math:`\pm\frac12` lies on the boundary of the range of :math:`\tfrac12\tanh`,
  reached only as :math:`V \to \pm\infty`.
* ``jeffrey`` is :math:`\mathrm{KL}(P\|Q) + \mathrm{KL}(Q\|P)`; its conjugate uses the Lambert W function,
  computed as the Wright omega function :math:`\omega(1 - t) = W(e^{1-t})` (:mod:`inference.lambert_w`), so very
  negative :math:`t` do not overflow.
* The activations follow the patterns of Nowozin et al.'s Table 2: the identity onto :math:`\mathbb{R}`,
  :math:`-e^{-v}` onto :math:`t < 0`, :math:`1 - e^{-v}` onto :math:`t < 1`, a shifted log-sigmoid
  :math:`c - \log(1 + e^{-v})` onto :math:`t < c`. All are increasing; the tests check that each maps
  :math:`\mathbb{R}` onto :attr:`FDivergence.t_range` and reaches every :math:`f'(u)`.
* ``alpha:A`` for :math:`A < 1` uses :math:`g_f(v) = (1 - e^{-v})/(1 - A)`, derived here: it is ``neyman``'s and
  ``squared-hellinger``'s :math:`1 - e^{-v}` scaled as ``alpha:-1`` = ``neyman``/2 and ``alpha:0.5`` =
  2 ``squared-hellinger``, it makes the optimal :math:`V^* = (1 - A)\log(p/q)` affine in the log-ratio (like
  ``kl``, ``reverse-kl``, ``gan``) and :math:`f^*(g_f(v)) = \mathrm{expm1}(Av/(1 - A))/A` closed. The shifted
  log-sigmoid :math:`\frac1{1-A} - \log(1 + e^{-v})` also maps onto dom :math:`f^*`, but where :math:`q \gg p` its
  optimal :math:`V` is :math:`-u^{A-1}/(1 - A)`, polynomially large, and with it adversarial training with
  ``alpha:-1`` diverged in ``benchmarks/fgan_gaussian_mixture.py``. For :math:`A > 1` the identity, as in the
  paper.

The generator's loss. The generator minimises :math:`F`, whose :math:`\theta`-dependent part is
:math:`-\mathbb{E}_{Q_\theta}[f^*(g_f(V(x)))]` (:meth:`FDivergence.generator_loss`). Nowozin et al. (Section 3.2)
also propose, generalising Goodfellow et al.'s non-saturating ``max log D`` heuristic, to *maximise*
:math:`\mathbb{E}_{Q_\theta}[g_f(V(x))]` instead, i.e. to minimise :math:`-\mathbb{E}_{Q_\theta}[g_f(V(x))]`
(``generator_loss(v_q, trick=True)``); for ``gan`` that is :math:`-\mathbb{E}_Q[\log D(x)]`. With the critic at
its optimum :math:`T^* = f'(p/q)` and held fixed, the saddle-point loss has the gradient of :math:`D_f(P\|Q_\theta)`
(envelope theorem), :math:`-\mathbb{E}_\epsilon[\frac pq(x)\, \nabla_x T^*(x)\, \partial x/\partial\theta]` for
:math:`x = x_\theta(\epsilon)` (as :math:`(f^*)'(T^*) = p/q`), while the trick's gradient drops the weight
:math:`p/q`: both push samples towards larger :math:`T` and both vanish at :math:`Q = P`, but for a model that cannot
reach :math:`P` the trick's fixed points are in general not the minimisers of :math:`D_f`.

:func:`build_divergence` makes one from a spec, ``"kl"``, ``"alpha:0.5"``, ``"jensen-shannon-weighted:0.3"``;
:func:`exact_divergence_1d` integrates :math:`D_f` numerically for densities on the line.

References:

[1] Sebastian Nowozin, Botond Cseke, Ryota Tomioka. f-GAN: Training Generative Neural Samplers using Variational
Divergence Minimization. NIPS 2016. [arXiv:1606.00709]

[2] XuanLong Nguyen, Martin J. Wainwright, Michael I. Jordan. Estimating divergence functionals and the likelihood
ratio by convex risk minimization. IEEE Transactions on Information Theory 56 (2010).

[3] Ian Goodfellow et al. Generative Adversarial Nets. NIPS 2014.
"""
import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from inference.lambert_w import wright_omega
from zoo.errors import ConfigError
from zoo.registry import Registry

__all__ = ["DIVERGENCES", "FDivergence", "build_divergence", "exact_divergence_1d"]

DIVERGENCES = Registry("f-divergence")

PAPER = "Nowozin, Cseke & Tomioka 2016 (f-GAN), Table 1-2"
LOG2 = math.log(2.0)


def _log_softplus(x: torch.Tensor) -> torch.Tensor:
    """log(softplus(x)) = log log(1 + e^x), also where softplus(x) underflows (x << 0: log softplus(x) ~ x)."""
    return torch.where(x < -20, x - 0.5 * torch.exp(x), torch.log(F.softplus(x.clamp(min=-20))))


def _log1mexp_of_log(log_a: torch.Tensor) -> torch.Tensor:
    """log(1 - e^{-a}) for a = e^{log_a} > 0, accurate for small and large a (Maechler 2012), also where a itself
    underflows (then log(1 - e^{-a}) = log a - a/2 + O(a^2))."""
    a = torch.exp(log_a)
    tiny = log_a < -15
    a_ = torch.where(tiny, torch.ones_like(a), a)
    exact = torch.where(a_ > LOG2, torch.log1p(-torch.exp(-a_)), torch.log(-torch.expm1(-a_)))
    return torch.where(tiny, log_a - 0.5 * a, exact)


class FDivergence:
    r"""
    An f-divergence :math:`D_f(P\|Q) = \int q f(p/q)` with what variational estimation needs: the generator
    :math:`f`, its conjugate :math:`f^*`, its derivative :math:`f'` (the optimal critic is
    :math:`T^* = f'(p/q)`) and the output activation :math:`g_f: \mathbb{R} \to \operatorname{dom} f^*`. All
    methods are elementwise on tensors and differentiable, except :meth:`bound` and the losses, which average
    over samples and return scalars.

    Subclasses define :meth:`f`, :meth:`f_star`, :meth:`activation`, :meth:`f_prime` and :attr:`t_range`; they
    override :meth:`f_star_g` (:math:`f^*(g_f(v))` in one stable formula), :meth:`f_log` and :meth:`f_over_u_log`
    (:math:`f` from :math:`\log u`, for quadrature) where the generic composition loses precision or overflows.
    """

    name: str = ""
    #: the open interval (lo, hi) that g_f maps R onto (the interior of dom f*); f'(u) lies in it (or on its edge)
    t_range: Tuple[float, float] = (-math.inf, math.inf)
    #: D_f(P || P) = f(1): 0 but for gan
    f_at_one: float = 0.0

    def spec(self) -> str:
        """The spec :func:`build_divergence` makes this from, e.g. ``"alpha:0.5"``."""
        return self.name

    def __repr__(self):
        return f"{type(self).__name__}({self.spec()!r})"

    # -- the table --------------------------------------------------------------------------------------------
    def f(self, u: torch.Tensor) -> torch.Tensor:
        """The generator function f(u), u = p/q > 0."""
        raise NotImplementedError

    def f_star(self, t: torch.Tensor) -> torch.Tensor:
        """The convex conjugate f*(t) = sup_{u>0} (u t - f(u)) on dom f* (+inf or NaN outside)."""
        raise NotImplementedError

    def activation(self, v: torch.Tensor) -> torch.Tensor:
        """The output activation g_f: R -> dom f*; the critic is T = g_f(V)."""
        raise NotImplementedError

    def f_prime(self, u: torch.Tensor) -> torch.Tensor:
        """f'(u); the optimal critic is T*(x) = f'(p(x)/q(x))."""
        raise NotImplementedError

    def f_star_g(self, v: torch.Tensor) -> torch.Tensor:
        """f*(g_f(v)), the Q-side term of the bound (overridden by a stable closed form where there is one)."""
        return self.f_star(self.activation(v))

    # -- the variational bound --------------------------------------------------------------------------------
    def bound(self, v_p: torch.Tensor, v_q: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat F = \operatorname{mean}\, g_f(v_p) - \operatorname{mean}\, f^*(g_f(v_q))`, a Monte Carlo
        estimate of a lower bound on :math:`D_f(P\|Q)`; ``v_p`` are the critic's raw outputs on samples of P (data),
        ``v_q`` on samples of Q (generator)."""
        return self.activation(v_p).mean() - self.f_star_g(v_q).mean()

    def critic_loss(self, v_p: torch.Tensor, v_q: torch.Tensor) -> torch.Tensor:
        """What the critic minimises: -bound (it maximises the bound)."""
        return -self.bound(v_p, v_q)

    def generator_loss(self, v_q: torch.Tensor, trick: bool = False) -> torch.Tensor:
        r"""What the generator minimises. ``trick=False``: the part of the bound that depends on the generator,
        :math:`-\operatorname{mean} f^*(g_f(v_q))` (the saddle point of Nowozin et al. eq. 6). ``trick=True``:
        their Section 3.2 alternative, maximise :math:`\mathbb{E}_Q[g_f(V)]`, i.e. minimise
        :math:`-\operatorname{mean}\, g_f(v_q)` (for ``gan``: the non-saturating :math:`-\mathbb{E}_Q \log D`)."""
        if trick:
            return -self.activation(v_q).mean()
        return -self.f_star_g(v_q).mean()

    # -- quadrature helpers -----------------------------------------------------------------------------------
    def f_log(self, log_u: torch.Tensor) -> torch.Tensor:
        """f(u) from log u (used for u <= 1)."""
        return self.f(torch.exp(log_u))

    def f_over_u_log(self, log_u: torch.Tensor) -> torch.Tensor:
        """f(u) / u from log u (used for u > 1)."""
        return self.f(torch.exp(log_u)) * torch.exp(-log_u)

    def perspective(self, log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        r"""The integrand :math:`q f(p/q)` from log-densities: :math:`q f(u)` where :math:`u \le 1` and
        :math:`p \cdot f(u)/u` where :math:`u > 1`, so no factor overflows where the other underflows (meant for
        float64: log-ratios are clamped to :math:`\pm 700`, the range of its exponential)."""
        log_u = (log_p - log_q).clamp(-700.0, 700.0)
        below = log_u <= 0
        zero = torch.zeros_like(log_u)
        small = torch.exp(log_q) * self.f_log(torch.where(below, log_u, zero))
        large = torch.exp(log_p) * self.f_over_u_log(torch.where(below, zero, log_u))
        return torch.where(below, small, large)


class _WithArg(FDivergence):
    """A divergence with a real parameter, written ``name:ARG``."""

    arg: float

    def spec(self) -> str:
        x = self.arg
        return f"{self.name}:{int(x) if x.is_integer() and abs(x) < 1e15 else repr(x)}"


@DIVERGENCES.register("total-variation", paper=PAPER, summary="1/2 int |p - q|; f = |u-1|/2, g = tanh(v)/2")
class TotalVariation(FDivergence):
    r"""Total variation :math:`\frac12\int|p - q|`: :math:`f(u) = \frac12|u - 1|`, :math:`f^*(t) = t` on
    :math:`|t| \le \frac12`, :math:`g_f(v) = \frac12\tanh v`. The optimal critic :math:`\pm\frac12` (the sign of
    :math:`p - q`) is a limit of the activation, not a value of it."""

    name = "total-variation"
    t_range = (-0.5, 0.5)

    def f(self, u):
        return 0.5 * (u - 1).abs()

    def f_star(self, t):
        return torch.where(t.abs() <= 0.5, t, torch.full_like(t, math.inf))

    def activation(self, v):
        return 0.5 * torch.tanh(v)

    def f_prime(self, u):
        return 0.5 * torch.sign(u - 1)

    def f_star_g(self, v):
        return 0.5 * torch.tanh(v)


@DIVERGENCES.register("kl", paper=PAPER, summary="KL(P||Q) = int p log(p/q); f = u log u, g = v")
class KL(FDivergence):
    r"""Kullback-Leibler :math:`\mathrm{KL}(P\|Q) = \int p\log\frac pq`: :math:`f(u) = u\log u`,
    :math:`f^*(t) = e^{t-1}`, :math:`g_f(v) = v`, :math:`f'(u) = 1 + \log u`."""

    name = "kl"

    def f(self, u):
        return torch.special.xlogy(u, u)

    def f_star(self, t):
        return torch.exp(t - 1)

    def activation(self, v):
        return v

    def f_prime(self, u):
        return 1 + torch.log(u)

    def f_log(self, log_u):
        return log_u * torch.exp(log_u)

    def f_over_u_log(self, log_u):
        return log_u


@DIVERGENCES.register("reverse-kl", paper=PAPER, summary="KL(Q||P) = int q log(q/p); f = -log u, g = -exp(-v)")
class ReverseKL(FDivergence):
    r"""Reverse Kullback-Leibler :math:`\mathrm{KL}(Q\|P) = \int q\log\frac qp`: :math:`f(u) = -\log u`,
    :math:`f^*(t) = -1 - \log(-t)` for :math:`t < 0`, :math:`g_f(v) = -e^{-v}`, :math:`f'(u) = -1/u`; so
    :math:`f^*(g_f(v)) = v - 1`."""

    name = "reverse-kl"
    t_range = (-math.inf, 0.0)

    def f(self, u):
        return -torch.log(u)

    def f_star(self, t):
        return -1 - torch.log(-t)

    def activation(self, v):
        return -torch.exp(-v)

    def f_prime(self, u):
        return -1 / u

    def f_star_g(self, v):
        return v - 1

    def f_log(self, log_u):
        return -log_u

    def f_over_u_log(self, log_u):
        return -log_u * torch.exp(-log_u)


@DIVERGENCES.register("pearson", paper=PAPER, summary="Pearson chi^2 int (p-q)^2/q; f = (u-1)^2, g = v")
class Pearson(FDivergence):
    r"""Pearson :math:`\chi^2 = \int (p - q)^2/q`: :math:`f(u) = (u - 1)^2`, :math:`g_f(v) = v`,
    :math:`f'(u) = 2(u - 1) > -2`. The conjugate over :math:`u > 0` is :math:`f^*(t) = t + t^2/4` for
    :math:`t \ge -2` and :math:`-f(0) = -1` below (Nowozin et al.'s :math:`t + t^2/4` everywhere is the conjugate
    over all real :math:`u`, a looser bound below -2)."""

    name = "pearson"

    def f(self, u):
        return (u - 1) ** 2

    def f_star(self, t):
        return torch.where(t >= -2, t + 0.25 * t * t, torch.full_like(t, -1.0))

    def activation(self, v):
        return v

    def f_prime(self, u):
        return 2 * (u - 1)

    def f_over_u_log(self, log_u):
        return torch.exp(log_u) - 2 + torch.exp(-log_u)


@DIVERGENCES.register("neyman", paper=PAPER, summary="Neyman chi^2 int (q-p)^2/p; f = (1-u)^2/u, g = 1 - exp(-v)")
class Neyman(FDivergence):
    r"""Neyman :math:`\chi^2 = \int (q - p)^2/p`: :math:`f(u) = (1 - u)^2/u`, :math:`f^*(t) = 2 - 2\sqrt{1 - t}`
    for :math:`t < 1`, :math:`g_f(v) = 1 - e^{-v}`, :math:`f'(u) = 1 - u^{-2}`; so
    :math:`f^*(g_f(v)) = 2 - 2e^{-v/2}`."""

    name = "neyman"
    t_range = (-math.inf, 1.0)

    def f(self, u):
        return (1 - u) ** 2 / u

    def f_star(self, t):
        return 2 - 2 * torch.sqrt(1 - t)

    def activation(self, v):
        return -torch.expm1(-v)

    def f_prime(self, u):
        return 1 - u ** -2

    def f_star_g(self, v):
        return 2 - 2 * torch.exp(-0.5 * v)

    def f_log(self, log_u):
        return torch.exp(-log_u) - 2 + torch.exp(log_u)

    def f_over_u_log(self, log_u):
        return (-torch.expm1(-log_u)) ** 2


@DIVERGENCES.register("squared-hellinger", paper=PAPER,
                      summary="int (sqrt p - sqrt q)^2; f = (sqrt u - 1)^2, g = 1 - exp(-v)")
class SquaredHellinger(FDivergence):
    r"""Squared Hellinger :math:`\int(\sqrt p - \sqrt q)^2`: :math:`f(u) = (\sqrt u - 1)^2`,
    :math:`f^*(t) = t/(1 - t)` for :math:`t < 1`, :math:`g_f(v) = 1 - e^{-v}`, :math:`f'(u) = 1 - u^{-1/2}`; so
    :math:`f^*(g_f(v)) = e^v - 1`."""

    name = "squared-hellinger"
    t_range = (-math.inf, 1.0)

    def f(self, u):
        return (torch.sqrt(u) - 1) ** 2

    def f_star(self, t):
        return t / (1 - t)

    def activation(self, v):
        return -torch.expm1(-v)

    def f_prime(self, u):
        return 1 - u ** -0.5

    def f_star_g(self, v):
        return torch.expm1(v)

    def f_log(self, log_u):
        return torch.expm1(0.5 * log_u) ** 2

    def f_over_u_log(self, log_u):
        return torch.expm1(-0.5 * log_u) ** 2


@DIVERGENCES.register("jeffrey", paper=PAPER, summary="KL(P||Q) + KL(Q||P); f = (u-1) log u, g = v")
class Jeffrey(FDivergence):
    r"""Jeffrey's divergence :math:`\mathrm{KL}(P\|Q) + \mathrm{KL}(Q\|P) = \int (p - q)\log\frac pq`:
    :math:`f(u) = (u - 1)\log u`, :math:`g_f(v) = v`, :math:`f'(u) = 1 + \log u - 1/u`, and
    :math:`f^*(t) = \omega + 1/\omega + t - 2` with :math:`\omega = W(e^{1-t})` (the Wright omega function of
    :math:`1 - t`; the maximiser is :math:`u = 1/\omega`)."""

    name = "jeffrey"

    def f(self, u):
        return (u - 1) * torch.log(u)

    def f_star(self, t):
        w = wright_omega(1 - t)
        return w + 1 / w + t - 2

    def activation(self, v):
        return v

    def f_prime(self, u):
        return 1 + torch.log(u) - 1 / u

    def f_log(self, log_u):
        return torch.expm1(log_u) * log_u

    def f_over_u_log(self, log_u):
        return -torch.expm1(-log_u) * log_u


@DIVERGENCES.register("jensen-shannon", paper=PAPER,
                      summary="KL(P||M) + KL(Q||M) = 2 JSD, M = (P+Q)/2; g = log 2 - log(1 + exp(-v))")
class JensenShannon(FDivergence):
    r"""Jensen-Shannon, Nowozin et al.'s scaling: :math:`\mathrm{KL}(P\|M) + \mathrm{KL}(Q\|M)`,
    :math:`M = (P + Q)/2` (twice the usual JSD, at most :math:`\log 4`):
    :math:`f(u) = u\log u - (u + 1)\log\frac{u+1}2`,
    :math:`f^*(t) = -\log(2 - e^t)` for :math:`t < \log 2`, :math:`g_f(v) = \log 2 - \log(1 + e^{-v}) = \log 2 +
    \log\sigma(v)`, :math:`f'(u) = \log\frac{2u}{1+u}`; so :math:`f^*(g_f(v)) = \mathrm{softplus}(v) - \log 2`."""

    name = "jensen-shannon"
    t_range = (-math.inf, LOG2)

    def f(self, u):
        return torch.special.xlogy(u, u) - (u + 1) * torch.log((u + 1) / 2)

    def f_star(self, t):
        return -torch.log(2 - torch.exp(t))

    def activation(self, v):
        return LOG2 - F.softplus(-v)

    def f_prime(self, u):
        return LOG2 + torch.log(u) - torch.log1p(u)

    def f_star_g(self, v):
        return F.softplus(v) - LOG2

    def f_log(self, log_u):
        u = torch.exp(log_u)
        return u * log_u - (u + 1) * (torch.log1p(u) - LOG2)

    def f_over_u_log(self, log_u):
        s = torch.exp(-log_u)  # 1/u <= 1:  f/u = log u - (1 + s)(log u + log1p(s) - log 2)
        return -s * log_u - (1 + s) * (torch.log1p(s) - LOG2)


@DIVERGENCES.register("jensen-shannon-weighted", arg="PI", paper=PAPER,
                      summary="pi KL(P||M) + (1-pi) KL(Q||M), M = pi P + (1-pi) Q; PI in (0, 1)")
class JensenShannonWeighted(_WithArg):
    r"""Weighted Jensen-Shannon with weight :math:`\pi \in (0, 1)`: :math:`\pi\,\mathrm{KL}(P\|M_\pi) +
    (1 - \pi)\,\mathrm{KL}(Q\|M_\pi)`, :math:`M_\pi = \pi P + (1 - \pi) Q`. :math:`f(u) = \pi u\log u - m\log m`
    with :math:`m = 1 - \pi + \pi u`, :math:`f^*(t) = (1 - \pi)\log\frac{1 - \pi}{1 - \pi e^{t/\pi}}` for
    :math:`t < -\pi\log\pi`, :math:`g_f(v) = -\pi\log\pi - \log(1 + e^{-v})`, :math:`f'(u) = \pi\log(u/m)`; so
    :math:`f^*(g_f(v)) = (1 - \pi)[\log(1 - \pi) - \log(1 - \sigma(v)^{1/\pi})]`."""

    name = "jensen-shannon-weighted"

    def __init__(self, pi: float):
        pi = float(pi)
        if not 0.0 < pi < 1.0:
            raise ConfigError(f"f-divergence jensen-shannon-weighted:{pi:g}: the weight PI must lie strictly between "
                              f"0 and 1 (e.g. jensen-shannon-weighted:0.5)")
        self.arg = self.pi = pi
        self.t_range = (-math.inf, -pi * math.log(pi))

    def f(self, u):
        pi = self.pi
        m = 1 - pi + pi * u
        return pi * torch.special.xlogy(u, u) - m * torch.log(m)

    def f_star(self, t):
        pi = self.pi
        return (1 - pi) * (math.log(1 - pi) - torch.log1p(-pi * torch.exp(t / pi)))

    def activation(self, v):
        return -self.pi * math.log(self.pi) - F.softplus(-v)

    def f_prime(self, u):
        pi = self.pi
        return pi * (torch.log(u) - torch.log(1 - pi + pi * u))

    def f_star_g(self, v):
        pi = self.pi
        return (1 - pi) * (math.log(1 - pi) - _log1mexp_of_log(_log_softplus(-v) - math.log(pi)))

    def f_log(self, log_u):
        pi = self.pi
        u = torch.exp(log_u)
        m = 1 - pi + pi * u
        return pi * u * log_u - m * torch.log(m)

    def f_over_u_log(self, log_u):
        pi = self.pi
        s = torch.exp(-log_u)  # 1/u <= 1;  m/u = pi + (1-pi) s,  log m = log u + log(pi + (1-pi) s)
        mu = pi + (1 - pi) * s
        return pi * log_u - mu * (log_u + torch.log(mu))


@DIVERGENCES.register("gan", paper=PAPER + "; Goodfellow et al. 2014",
                      summary="2 JSD - log 4, the GAN objective; f = u log u - (u+1) log(u+1), g = log sigmoid(v)")
class GAN(FDivergence):
    r"""The GAN divergence :math:`2\,\mathrm{JSD}(P, Q) - \log 4` (Goodfellow et al.'s value function at the
    optimal discriminator): :math:`f(u) = u\log u - (u + 1)\log(u + 1)`, :math:`f^*(t) = -\log(1 - e^t)` for
    :math:`t < 0`, :math:`g_f(v) = -\log(1 + e^{-v}) = \log\sigma(v)`, :math:`f'(u) = \log\frac u{u+1}`; so
    :math:`f^*(g_f(v)) = \mathrm{softplus}(v) = -\log(1 - \sigma(v))` and the bound is
    :math:`\mathbb{E}_P\log D + \mathbb{E}_Q\log(1 - D)`, :math:`D = \sigma(V)`. Not normalised:
    :math:`f(1) = -\log 4`."""

    name = "gan"
    t_range = (-math.inf, 0.0)
    f_at_one = -2 * LOG2

    def f(self, u):
        return torch.special.xlogy(u, u) - (u + 1) * torch.log1p(u)

    def f_star(self, t):
        return -torch.log(-torch.expm1(t))

    def activation(self, v):
        return -F.softplus(-v)

    def f_prime(self, u):
        return torch.log(u) - torch.log1p(u)

    def f_star_g(self, v):
        return F.softplus(v)

    def f_log(self, log_u):
        u = torch.exp(log_u)
        return u * log_u - (u + 1) * torch.log1p(u)

    def f_over_u_log(self, log_u):
        s = torch.exp(-log_u)  # f/u = log u - (1 + s) log(1 + u) = -log1p(s) - s (log u + log1p(s))
        return -torch.log1p(s) - s * (log_u + torch.log1p(s))


@DIVERGENCES.register("alpha", arg="A", paper=PAPER + "; Cichocki & Amari 2010",
                      summary="(int p^A q^(1-A) - 1) / (A(A-1)), A real, not 0 or 1")
class Alpha(_WithArg):
    r"""The alpha-divergence (Amari's family, parameterised as by Cichocki & Amari 2010 and Nowozin et al.),
    :math:`A \notin \{0, 1\}`:
    :math:`D = \frac{\int p^A q^{1-A} - 1}{A(A - 1)}`, :math:`f(u) = \frac{u^A - 1 - A(u - 1)}{A(A - 1)}`,
    :math:`f'(u) = \frac{u^{A-1} - 1}{A - 1}`, :math:`f^*(t) = \frac1A (1 + (A - 1)t)^{A/(A-1)} - \frac1A`.

    * :math:`A < 1`: :math:`f'` maps :math:`(0, \infty)` onto :math:`(-\infty, \frac1{1-A})` = dom :math:`f^*`;
      :math:`g_f(v) = \frac{1 - e^{-v}}{1 - A}`, so :math:`1 + (A - 1)g_f(v) = e^{-v}`,
      :math:`f^*(g_f(v)) = \mathrm{expm1}(\frac{A v}{1 - A})/A`, and the optimal critic is
      :math:`V^* = (1 - A)\log(p/q)`.
    * :math:`A > 1`: :math:`f'` maps onto :math:`(\frac1{1-A}, \infty)`; :math:`g_f(v) = v` and
      :math:`f^*(t) = -1/A = -f(0)` for :math:`t \le \frac1{1-A}` (the supremum at :math:`u \to 0`), so
      :math:`f^*` is the exact conjugate on all of :math:`\mathbb{R}`.

    :math:`A \to 1` is ``kl``, :math:`A \to 0` is ``reverse-kl``; :math:`A = 1/2`: 2 ``squared-hellinger``,
    :math:`A = 2`: ``pearson``/2, :math:`A = -1`: ``neyman``/2."""

    name = "alpha"

    def __init__(self, a: float):
        a = float(a)
        if a in (0.0, 1.0):
            limit = "kl" if a == 1.0 else "reverse-kl"
            raise ConfigError(f"f-divergence alpha:{a:g}: the alpha-divergence is undefined at A = {a:g}; its limit "
                              f"there is {'KL(P||Q)' if a == 1.0 else 'KL(Q||P)'}: use {limit}")
        if not math.isfinite(a):
            raise ConfigError(f"f-divergence alpha:{a}: A must be a finite real number other than 0 and 1")
        self.arg = self.a = a
        self.t_range = (-math.inf, 1.0 / (1.0 - a)) if a < 1 else (-math.inf, math.inf)

    def f(self, u):
        a = self.a
        return (u ** a - 1 - a * (u - 1)) / (a * (a - 1))

    def f_star(self, t):
        a = self.a
        base = 1 + (a - 1) * t
        if a > 1:
            base = base.clamp(min=0)
        return base ** (a / (a - 1)) / a - 1 / a

    def activation(self, v):
        if self.a > 1:
            return v
        return -torch.expm1(-v) / (1 - self.a)

    def f_prime(self, u):
        a = self.a
        return (u ** (a - 1) - 1) / (a - 1)

    def f_star_g(self, v):
        a = self.a
        if a > 1:
            return self.f_star(v)
        return torch.expm1(a * v / (1 - a)) / a  # 1 + (A-1) g(v) = e^{-v}, raised to A/(A-1)

    def f_log(self, log_u):
        a = self.a
        return (torch.expm1(a * log_u) - a * torch.expm1(log_u)) / (a * (a - 1))

    def f_over_u_log(self, log_u):
        a = self.a
        s = torch.exp(-log_u)
        return (torch.exp((a - 1) * log_u) - s - a * (1 - s)) / (a * (a - 1))


def _arg_example(name: str) -> str:
    return {"alpha": "alpha:0.5", "jensen-shannon-weighted": "jensen-shannon-weighted:0.5"}.get(name, name)


def divergence_specs() -> str:
    """The names build_divergence accepts, with ``:ARG`` where they take one."""
    return ", ".join(e.name + (f":{e.arg}" if e.arg else "") for e in DIVERGENCES)


def build_divergence(spec: str) -> FDivergence:
    """The :class:`FDivergence` of a spec: ``NAME`` or ``NAME:ARG`` with a real ARG (``alpha:-0.5``,
    ``jensen-shannon-weighted:0.3``). Bad specs raise :class:`~zoo.errors.ConfigError` with a one-line reason."""
    if isinstance(spec, FDivergence):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty f-divergence {spec!r}; choose one of: {divergence_specs()}")
    name, sep, arg = spec.strip().partition(":")
    if name not in DIVERGENCES.names():
        raise ConfigError(f"unknown f-divergence {name!r}; choose one of: {divergence_specs()}")
    entry = DIVERGENCES.entry(name)
    if entry.arg is None:
        if sep:
            raise ConfigError(f"f-divergence {name!r} takes no ':' argument, got {spec!r} (write {name})")
        return entry.factory()
    if not sep or not arg.strip():
        raise ConfigError(f"f-divergence {name!r} needs its {entry.arg}: write {name}:{entry.arg} "
                          f"(e.g. {_arg_example(name)})")
    try:
        value = float(arg)
    except ValueError:
        raise ConfigError(f"f-divergence {spec!r}: {entry.arg} must be a number, got {arg!r} "
                          f"(e.g. {_arg_example(name)})") from None
    return entry.factory(value)


def simpson(y: torch.Tensor, dx: float) -> torch.Tensor:
    """Composite Simpson's rule over the last dimension (an odd number of equally spaced points)."""
    n = y.shape[-1]
    if n < 3 or n % 2 == 0:
        raise ValueError(f"Simpson's rule needs an odd number >= 3 of points, got {n}")
    return dx / 3 * (y[..., 0] + y[..., -1] + 4 * y[..., 1:-1:2].sum(-1) + 2 * y[..., 2:-1:2].sum(-1))


def exact_divergence_1d(div, log_p: Callable[[torch.Tensor], torch.Tensor],
                        log_q: Callable[[torch.Tensor], torch.Tensor], lo: float, hi: float, n: int = 20001,
                        dtype: Optional[torch.dtype] = torch.float64) -> torch.Tensor:
    r""":math:`D_f(P\|Q) = \int_{lo}^{hi} q f(p/q)\,dx` by Simpson's rule on ``n`` (odd) equally spaced points in
    float64, the integrand formed from the log-densities by :meth:`FDivergence.perspective` (no overflow where one
    density underflows). ``div`` is an :class:`FDivergence` or a spec; ``log_p``, ``log_q`` map a tensor of points
    to log-densities and may depend on parameters (the result is differentiable in them). The mass outside
    ``[lo, hi]`` is ignored: choose the interval so that both densities are negligible beyond it."""
    div = build_divergence(div)
    x = torch.linspace(lo, hi, n, dtype=dtype)
    return simpson(div.perspective(log_p(x), log_q(x)), (hi - lo) / (n - 1))
