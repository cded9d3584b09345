"""The f-divergence table of f-GAN (inference/f_divergences.py) and the Lambert W function (inference/lambert_w.py).

* the table itself, numerically for every row: f(1) = 0 (gan: -log 4), f* is the conjugate sup_u (u t - f(u)) found
  by a two-level dense grid at several t in the range of g_f, f'(u) lies in that range and g_f reaches it, the Fenchel
  equality f*(f'(u)) = u f'(u) - f(u), the stable closed forms against their plain compositions;
* Lambert W / Wright omega: W e^W = x to 1e-12 relative in float64 from -1/e to e^700, gradients by gradcheck;
* exact_divergence_1d against the Gaussians' closed forms (KL, chi^2, Hellinger, alpha, JS relations);
* the estimator: a small critic trained with Adam reaches the numerically integrated D_f for every divergence (two
  Gaussians; a mixture against a Gaussian for three), its T = g_f(V) approaches f'(p/q), and no estimate exceeds D_f
  by more than its Monte Carlo error;
* adversarial training of a Gaussian generator (benchmarks/fgan_gaussian_mixture.py) lands near the exact minimiser
  of D_f(P || Q_theta) for kl (covers the modes) and reverse-kl (picks one);
* build_divergence's one-line refusals.
"""
import importlib.util
import math
import os

import pytest
import torch

from inference.f_divergences import DIVERGENCES, FDivergence, build_divergence, exact_divergence_1d
from inference.lambert_w import lambert_w, wright_omega
from zoo.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["total-variation", "kl", "reverse-kl", "pearson", "neyman", "squared-hellinger", "jeffrey", "jensen-shannon",
         "jensen-shannon-weighted", "gan", "alpha"]
#: every row of the table, alpha on both sides of 0 and 1 and weighted JS with two weights
TABLE = ["total-variation", "kl", "reverse-kl", "pearson", "neyman", "squared-hellinger", "jeffrey", "jensen-shannon",
         "jensen-shannon-weighted:0.3", "jensen-shannon-weighted:0.8", "gan", "alpha:0.5", "alpha:-0.7", "alpha:2.5",
         "alpha:1.5", "alpha:-2"]

f64 = torch.float64


def _div(spec) -> FDivergence:
    return build_divergence(spec)


# ---------------------------------------------------------------------------------------------------- the table


def test_registry_has_the_eleven_rows():
    assert DIVERGENCES.names() == sorted(NAMES)
    for spec in TABLE:
        d = _div(spec)
        assert d.spec() == spec and isinstance(d, FDivergence)


@pytest.mark.parametrize("spec", TABLE)
def test_f_at_one(spec):
    d = _div(spec)
    expected = -math.log(4) if spec == "gan" else 0.0
    assert d.f_at_one == pytest.approx(expected, abs=1e-15)
    assert d.f(torch.tensor(1.0, dtype=f64)).item() == pytest.approx(expected, abs=1e-15)


def _numerical_conjugate(d: FDivergence, t: torch.Tensor) -> torch.Tensor:
    """max_{u > 0} (u t - f(u)) on a grid of log u in [-25, 25] (spacing 2.5e-4), refined on a 2000x finer grid
    around the best point; the objective is concave in u, so this is the supremum up to ~1e-12."""
    lu = torch.linspace(-25, 25, 200001, dtype=f64)
    vals = torch.exp(lu) * t[:, None] - d.f(torch.exp(lu))[None, :]
    best = lu[vals.argmax(1)]
    step = 50 / 200000
    fine = best[:, None] + torch.linspace(-2 * step, 2 * step, 2001, dtype=f64)[None, :]
    return (torch.exp(fine) * t[:, None] - d.f(torch.exp(fine))).max(1).values


V = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0], dtype=f64)


@pytest.mark.parametrize("spec", TABLE)
def test_f_star_is_the_convex_conjugate(spec):
    d = _div(spec)
    t = d.activation(V)
    expected = _numerical_conjugate(d, t)
    got = d.f_star(t)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (t, got, expected)
    assert torch.allclose(d.f_star_g(V), got, rtol=1e-12, atol=1e-12)  # the fused stable form


U = torch.exp(torch.linspace(-6, 6, 49, dtype=f64))


@pytest.mark.parametrize("spec", TABLE)
def test_optimal_critic_is_in_the_range_of_the_activation(spec):
    d = _div(spec)
    lo, hi = d.t_range
    t_opt = d.f_prime(U)
    g = d.activation(torch.linspace(-40, 40, 801, dtype=f64))
    assert (g >= lo).all() and (g <= hi).all()  # g_f maps into dom f* ...
    assert g.min() < max(lo, -20) + 1e-6 and g.max() > min(hi, 20) - 1e-6  # ... onto the stated interval
    if spec == "total-variation":  # f' = +-1/2 is the boundary of the range of tanh/2: reached only as V -> +-inf
        assert ((t_opt.abs() == 0.5) | (U == 1)).all()
        return
    assert ((t_opt > lo) & (t_opt < hi)).all()
    # g_f is increasing, so bisection finds the V with g_f(V) = f'(u): the optimum is reachable
    a = torch.full_like(U, -1e9)
    b = torch.full_like(U, 1e9)
    for _ in range(200):
        mid = (a + b) / 2
        below = d.activation(mid) < t_opt
        a, b = torch.where(below, mid, a), torch.where(below, b, mid)
    assert torch.allclose(d.activation((a + b) / 2), t_opt, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spec", TABLE)
def test_fenchel_equality(spec):
    d = _div(spec)
    t = d.f_prime(U)
    assert torch.allclose(d.f_star(t), U * t - d.f(U), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("spec", TABLE)
def test_log_space_forms_match_f(spec):
    d = _div(spec)
    """f from log u (quadrature uses it for u <= 1) and f(u)/u from log u (for u >= 1) against the plain f."""
    lu = torch.linspace(-20, 5, 51, dtype=f64)
    assert torch.allclose(d.f_log(lu), d.f(torch.exp(lu)), rtol=1e-10, atol=1e-12)
    # for gan u log u - (u+1) log(1+u) itself cancels for large u: compare where the plain form is still exact
    lu = torch.linspace(-5, 8 if spec == "gan" else 20, 51, dtype=f64)
    assert torch.allclose(d.f_over_u_log(lu), d.f(torch.exp(lu)) / torch.exp(lu), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", TABLE)
def test_bound_and_losses(spec):
    d = _div(spec)
    v_p, v_q = torch.randn(7, dtype=f64, requires_grad=True), torch.randn(5, dtype=f64, requires_grad=True)
    bound = d.bound(v_p, v_q)
    assert bound.shape == ()
    assert bound.item() == pytest.approx((d.activation(v_p).mean() - d.f_star(d.activation(v_q)).mean()).item())
    assert d.critic_loss(v_p, v_q).item() == pytest.approx(-bound.item())
    assert d.generator_loss(v_q).item() == pytest.approx(-d.f_star(d.activation(v_q)).mean().item())
    assert d.generator_loss(v_q, trick=True).item() == pytest.approx(-d.activation(v_q).mean().item())
    g_p, g_q = torch.autograd.grad(bound, (v_p, v_q))
    assert torch.isfinite(g_p).all() and torch.isfinite(g_q).all()


def test_gan_row_is_goodfellows_value_function():
    d = _div("gan")
    v_p, v_q = torch.randn(9, dtype=f64), torch.randn(11, dtype=f64)
    dp, dq = torch.sigmoid(v_p), torch.sigmoid(v_q)
    assert d.bound(v_p, v_q).item() == pytest.approx((dp.log().mean() + (1 - dq).log().mean()).item(), rel=1e-12)
    assert d.generator_loss(v_q, trick=True).item() == pytest.approx(-dq.log().mean().item(), rel=1e-12)


def test_stable_forms_at_extreme_logits():
    """f*(g_f(v)) in float32: for the log-sigmoid activations it stays finite where the plain composition saturates
    (g_f(v) rounds onto the edge of dom f*), and every fused form agrees with the float64 composition where that one
    is still exact. (The others grow exponentially in v, as they should: e.g. neyman's 2 - 2 e^{-v/2}.)"""
    big = torch.tensor([-200.0, -40.0, 40.0, 200.0])
    mid = torch.tensor([-15.0, -5.0, 5.0, 15.0])
    for spec in ["gan", "jensen-shannon", "jensen-shannon-weighted:0.3", "reverse-kl", "neyman", "squared-hellinger",
                 "alpha:0.5", "alpha:-0.5"]:
        d = _div(spec)
        if spec in ("gan", "jensen-shannon", "jensen-shannon-weighted:0.3"):  # the log-sigmoid family
            assert torch.isfinite(d.f_star_g(big)).all(), spec
        reference = d.f_star(d.activation(mid.double())).float()
        assert torch.allclose(d.f_star_g(mid), reference, rtol=1e-5), spec
    assert _div("gan").f_star_g(torch.tensor([200.0])).item() == pytest.approx(200.0)
    assert _div("jensen-shannon-weighted:0.3").f_star_g(torch.tensor([200.0])).item() == pytest.approx(
        0.7 * (math.log(0.7) + 200 + math.log(0.3)))
    assert torch.isfinite(_div("jeffrey").f_star(torch.tensor([-1e4, -700.0, 0.0, 50.0], dtype=f64))).all()


# ---------------------------------------------------------------------------------------------------- Lambert W


def test_lambert_w_solves_w_exp_w_in_float64():
    x = torch.cat([torch.tensor([0.0, 5e-324, 1e-300, 1e-30, 1e-8, -1 / math.e, -0.3678, -0.3, -0.25, -0.1, 0.5, 1.0,
                                 math.e, 3.0, 1e5, 1e300, 1.7e308], dtype=f64),
                   torch.logspace(-20, 307, 400, dtype=f64), -torch.logspace(-20, 0, 200, dtype=f64) / math.e])
    w = lambert_w(x)
    assert w.dtype == f64 and torch.isfinite(w).all() and (w >= -1).all()
    resid = (w * torch.exp(w) - x).abs()
    assert (resid <= 1e-12 * x.abs().clamp(min=1)).all(), resid.max()
    assert lambert_w(torch.tensor([0.0, 1.0, math.e], dtype=f64)).tolist() == pytest.approx([0, 0.5671432904097838, 1])
    assert math.isnan(lambert_w(torch.tensor(-0.4, dtype=f64)).item())


def test_wright_omega_is_lambert_w_of_exp_without_overflow():
    y = torch.cat([torch.linspace(-40, 40, 801, dtype=f64), torch.tensor([100.0, 700.0, 1e4, 1e10], dtype=f64)])
    w = wright_omega(y)
    assert ((w + torch.log(w) - y).abs() <= 1e-12 * y.abs().clamp(min=1)).all()  # log-space: e^y never formed
    moderate = y.abs() < 30
    assert torch.allclose(w[moderate], lambert_w(torch.exp(y[moderate])), rtol=1e-13)
    assert wright_omega(torch.tensor(700.0, dtype=f64)).item() == pytest.approx(lambert_w(torch.tensor(
        math.exp(700.0), dtype=f64)).item(), rel=1e-14)


def test_lambert_w_float32():
    x = torch.cat([torch.tensor([0.0, 1e-30, -0.36, 1.0, 1e30]), torch.logspace(-10, 30, 200)])
    w = lambert_w(x)
    assert w.dtype == torch.float32
    assert ((w * torch.exp(w) - x).abs() <= 2e-6 * x.abs().clamp(min=1) * w.abs().clamp(min=1)).all()


def test_lambert_w_gradients():
    x = torch.tensor([0.0, 1e-6, -0.3, -0.36, 0.5, 3.0, 50.0, 1e10], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambert_w, (x,))
    assert torch.autograd.gradgradcheck(lambert_w, (x,))
    y = torch.tensor([-30.0, -1.0, 0.0, 0.99, 1.01, 5.0, 700.0, 1e4], dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(wright_omega, (y,))
    assert torch.autograd.gradgradcheck(wright_omega, (y,))
    w = lambert_w(x)
    (g,) = torch.autograd.grad(w.sum(), x)
    nonzero = x != 0
    assert torch.allclose(g[nonzero], (w / (x * (1 + w)))[nonzero])  # W' = W / (x (1 + W))
    # Jeffrey's conjugate: d f*/dt is the maximiser u = 1/W(e^{1-t})
    t = torch.tensor([-500.0, -3.0, 0.0, 2.0], dtype=f64, requires_grad=True)
    (gt,) = torch.autograd.grad(_div("jeffrey").f_star(t).sum(), t)
    assert torch.allclose(gt, 1 / wright_omega(1 - t.detach()))


# ---------------------------------------------------------------------------------------------------- quadrature


def _normal(m, s):
    d = torch.distributions.Normal(torch.tensor(m, dtype=f64), torch.tensor(s, dtype=f64))
    return d.log_prob


def _power_integral(a, m1, s1, m2, s2):
    """int p^a q^(1-a) for p = N(m1, s1^2), q = N(m2, s2^2)."""
    sa2 = a * s2 ** 2 + (1 - a) * s1 ** 2
    return s1 ** (1 - a) * s2 ** a / math.sqrt(sa2) * math.exp(-a * (1 - a) * (m1 - m2) ** 2 / (2 * sa2))


def test_exact_divergence_1d_against_gaussian_closed_forms():
    m1, s1, m2, s2 = 0.3, 1.0, -0.4, 1.15
    lp, lq = _normal(m1, s1), _normal(m2, s2)

    def D(spec):
        return exact_divergence_1d(spec, lp, lq, -30, 30, 30001).item()

    kl = math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    rkl = math.log(s1 / s2) + (s2 ** 2 + (m1 - m2) ** 2) / (2 * s1 ** 2) - 0.5
    closed = {
        "kl": kl, "reverse-kl": rkl, "jeffrey": kl + rkl,
        "pearson": _power_integral(2, m1, s1, m2, s2) - 1, "neyman": _power_integral(-1, m1, s1, m2, s2) - 1,
        "squared-hellinger": 2 - 2 * _power_integral(0.5, m1, s1, m2, s2),
    }
    for a in (0.5, -0.7, 2.5, 1.5, -2):
        closed[f"alpha:{a:g}"] = (_power_integral(a, m1, s1, m2, s2) - 1) / (a * (a - 1))
    for spec, value in closed.items():
        assert D(spec) == pytest.approx(value, rel=1e-10, abs=1e-12), spec
    js = D("jensen-shannon")
    assert 0 < js < math.log(4)
    assert D("jensen-shannon-weighted:0.5") == pytest.approx(js / 2, rel=1e-10)
    assert D("gan") == pytest.approx(js - math.log(4), rel=1e-10)
    # total variation: 1/2 int |p - q| = P(A) - Q(A), A = {p > q} = (c1, c2) between the two crossing points
    a2, b2 = 1 / s2 ** 2 - 1 / s1 ** 2, 2 * (m1 / s1 ** 2 - m2 / s2 ** 2)
    c2 = m2 ** 2 / s2 ** 2 - m1 ** 2 / s1 ** 2 - 2 * math.log(s1 / s2)  # log p - log q = (a2 x^2 + b2 x + c2) / 2
    disc = math.sqrt(b2 ** 2 - 4 * a2 * c2)
    c_lo, c_hi = sorted([(-b2 - disc) / (2 * a2), (-b2 + disc) / (2 * a2)])
    cdf = torch.distributions.Normal(0.0, 1.0).cdf
    mass = lambda m, s: (cdf(torch.tensor((c_hi - m) / s)) - cdf(torch.tensor((c_lo - m) / s))).item()  # noqa: E731
    assert D("total-variation") == pytest.approx(mass(m1, s1) - mass(m2, s2), abs=1e-6)  # kinks: Simpson's O(h^2)


def test_exact_divergence_1d_is_stable_in_far_tails():
    """Densities down to e^-1000 on the grid: no NaN or inf, and the same value as on a tight interval."""
    lp, lq = _normal(0.0, 1.0), _normal(0.5, 1.1)
    for spec in TABLE:
        wide = exact_divergence_1d(spec, lp, lq, -45, 45, 90001)
        tight = exact_divergence_1d(spec, lp, lq, -15, 15, 30001)
        assert torch.isfinite(wide) and wide.item() == pytest.approx(tight.item(), rel=1e-7, abs=1e-6), spec


def test_exact_divergence_1d_is_differentiable():
    mu = torch.tensor(0.5, dtype=f64, requires_grad=True)
    lq = lambda x: torch.distributions.Normal(mu, torch.tensor(1.0, dtype=f64)).log_prob(x)  # noqa: E731
    kl = exact_divergence_1d("kl", _normal(0.0, 1.0), lq, -20, 20, 4001)
    (g,) = torch.autograd.grad(kl, mu)
    assert kl.item() == pytest.approx(0.125, rel=1e-9) and g.item() == pytest.approx(0.5, rel=1e-8)


# ---------------------------------------------------------------------------------------------------- the estimator

#: every row once, alpha on both sides of 1 (its two activations)
ELEVEN = ["total-variation", "kl", "reverse-kl", "pearson", "neyman", "squared-hellinger", "jeffrey", "jensen-shannon",
          "jensen-shannon-weighted:0.3", "gan", "alpha:-0.5", "alpha:2"]
# P = N(0, 1), Q = N(0.5, 1.1^2): every divergence finite (chi^2 and alpha:-0.5 / alpha:2 need
# sigma_q^2 / sigma_p^2 in (1/2, 2), and the Monte Carlo variance of the neyman and pearson bounds needs (3/4, 4/3))
GAUSSIANS = (torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(0.5, 1.1))
# P = 0.5 N(-1, 0.8^2) + 0.5 N(1, 0.8^2), Q = N(0, 1): neyman finite as 0.8^2 > 1/2
MIXTURE = (torch.distributions.MixtureSameFamily(torch.distributions.Categorical(torch.tensor([0.5, 0.5])),
                                                 torch.distributions.Normal(torch.tensor([-1.0, 1.0]),
                                                                            torch.tensor([0.8, 0.8]))),
           torch.distributions.Normal(0.0, 1.0))
#: the bound may fall short of D_f by this fraction of D_f - f(1), plus 3 Monte Carlo standard errors
SHORTFALL = 0.05
#: |T - f'(p/q)| <= T_TOL max(1, |f'(p/q)|) on x in [-1.5, 1.5] (total variation: away from where p = q)
T_TOL = 0.15


def _exact(spec, p, q):
    as64 = lambda d: lambda x: d.log_prob(x.float()).double()  # noqa: E731 - float32 densities, float64 quadrature
    return exact_divergence_1d(spec, as64(p), as64(q), -15.0, 15.0, 6001).item()


def _train_critic(div, p, q, steps, hidden, batch=1000, lr=0.03, seed=0):
    """A one-hidden-layer tanh critic on (x, x^2/2) trained by Adam (cosine-decayed) on fresh samples."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    critic = lambda x: net(torch.stack([x, x * x / 2], -1)).squeeze(-1)  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss = div.critic_loss(critic(p.sample((batch,))), critic(q.sample((batch,))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    return critic


def _held_out_bound(div, critic, p, q, n=200000, seed=12345):
    """The bound on n fresh samples of each (drawn under their own seed), and its Monte Carlo standard error."""
    torch.manual_seed(seed)
    with torch.no_grad():
        a, b = div.activation(critic(p.sample((n,)))), div.f_star_g(critic(q.sample((n,))))
    return (a.mean() - b.mean()).item(), math.sqrt(a.var().item() / n + b.var().item() / n)


def _check_estimate(spec, pair, steps, hidden):
    div = _div(spec)
    p, q = pair
    exact = _exact(spec, p, q)
    critic = _train_critic(div, p, q, steps, hidden)
    estimate, se = _held_out_bound(div, critic, p, q)
    shortfall = SHORTFALL * (exact - div.f_at_one) + 3 * se
    assert estimate <= exact + 3 * se, (spec, estimate, exact, se)  # a lower bound, up to Monte Carlo error
    assert estimate >= exact - shortfall, (spec, estimate, exact, se)
    return div, critic


@pytest.mark.parametrize("spec", ELEVEN)
def test_trained_critic_reaches_the_divergence_between_gaussians(spec):
    div, critic = _check_estimate(spec, GAUSSIANS, steps=200, hidden=16)
    # ... and T = g_f(V) approaches the optimal critic f'(p/q) in the central region
    p, q = GAUSSIANS
    x = torch.linspace(-1.5, 1.5, 31)
    with torch.no_grad():
        t = div.activation(critic(x))
    u = torch.exp(p.log_prob(x) - q.log_prob(x))
    t_opt = div.f_prime(u)
    if spec == "total-variation":  # the optimum jumps between -1/2 and 1/2 where p = q: compare away from there
        keep = u.log().abs() > 0.3
        t, t_opt = t[keep], t_opt[keep]
    assert ((t - t_opt).abs() <= T_TOL * t_opt.abs().clamp(min=1)).all(), (spec, (t - t_opt).abs().max())


@pytest.mark.parametrize("spec", ["kl", "neyman", "jeffrey"])
def test_trained_critic_reaches_the_divergence_of_a_mixture_from_a_gaussian(spec):
    _check_estimate(spec, MIXTURE, steps=250, hidden=32)


def _benchmark():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "fgan_gaussian_mixture.py")
    spec = importlib.util.spec_from_file_location("fgan_gaussian_mixture", os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the adversarial fit lands within this distance of the exact minimiser in mu and in sigma
FIT_TOL = 0.1


@pytest.mark.parametrize("spec", ["kl", "reverse-kl"])
def test_adversarial_gaussian_lands_near_the_exact_minimiser(spec):
    """The benchmark's two-player loop, shortened: kl covers both modes of 0.3 N(-2.5, .75^2) + 0.7 N(2, .75^2)
    (moment matching), reverse-kl sits on the heavier one; both near the L-BFGS minimiser of the quadrature D_f."""
    bench = _benchmark()
    bench.GRID = 2001
    mu_star, sigma_star, _ = bench.exact_minimiser(spec, starts=[(0.0, 1.0)])
    mu, sigma, _ = bench.adversarial_fit(spec, steps=900, batch=256, hidden=32, layers=1, generator_lr=3e-2)
    if spec == "kl":
        assert (mu_star, sigma_star) == pytest.approx(bench.mixture_moments(), abs=1e-4)
        assert sigma > 2.0  # covers both modes
    else:
        assert abs(mu_star - 2.0) < 0.1 and sigma_star < 0.8 and sigma < 0.9  # one mode: the heavier
    assert abs(mu - mu_star) < FIT_TOL and abs(sigma - sigma_star) < FIT_TOL, (mu, sigma, mu_star, sigma_star)


# ---------------------------------------------------------------------------------------------------- build_divergence


def test_build_divergence_specs():
    assert build_divergence("alpha:-0.5").a == -0.5
    assert build_divergence(" jensen-shannon-weighted:0.3 ").pi == 0.3
    assert build_divergence("alpha:2").spec() == "alpha:2"
    assert build_divergence("alpha:2.0").spec() == "alpha:2"
    assert build_divergence("alpha:0.123456789").spec() == "alpha:0.123456789"  # round-trips
    assert build_divergence("alpha:-1e-7").spec() == "alpha:-1e-07"
    d = build_divergence("kl")
    assert build_divergence(d) is d


@pytest.mark.parametrize("spec, message", [
    ("wasserstein", "unknown f-divergence 'wasserstein'; choose one of: alpha:A, gan, jeffrey, jensen-shannon, "
                    "jensen-shannon-weighted:PI, kl, neyman, pearson, reverse-kl, squared-hellinger, total-variation"),
    ("alpha:1", "alpha:1: the alpha-divergence is undefined at A = 1; its limit there is KL(P||Q): use kl"),
    ("alpha:0", "alpha:0: the alpha-divergence is undefined at A = 0; its limit there is KL(Q||P): use reverse-kl"),
    ("alpha:0.0", "use reverse-kl"),
    ("jensen-shannon-weighted:2", "the weight PI must lie strictly between 0 and 1"),
    ("jensen-shannon-weighted:0", "the weight PI must lie strictly between 0 and 1"),
    ("alpha:half", "alpha:half': A must be a number, got 'half'"),
    ("alpha:inf", "A must be a finite real number"),
    ("alpha", "f-divergence 'alpha' needs its A: write alpha:A (e.g. alpha:0.5)"),
    ("jensen-shannon-weighted:", "needs its PI: write jensen-shannon-weighted:PI"),
    ("kl:2", "f-divergence 'kl' takes no ':' argument, got 'kl:2' (write kl)"),
    ("", "empty f-divergence"),
])
def test_build_divergence_refusals(spec, message):
    with pytest.raises(ConfigError) as info:
        build_divergence(spec)
    text = str(info.value)
    assert message in text and "\n" not in text
