"""VonMisesFisher / HypersphericalUniform: normalisation, closed forms, sampling law, gradients, KL, entropy."""
import math

import numpy as np
import pyro
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from zoo.distributions import HypersphericalUniform, VonMisesFisher, bessel_iv_ratio, log_bessel_iv
from zoo.distributions.von_mises_fisher import log_sphere_area

F64 = torch.float64


def unit(*shape, dtype=F64):
    x = torch.randn(*shape, dtype=dtype)
    return x / x.norm(dim=-1, keepdim=True)


def orthonormal_pair(m):
    q, _ = torch.linalg.qr(torch.randn(m, m, dtype=F64))
    return q[:, 0], q[:, 1]


def scipy_log_iv(v, k):
    k = np.asarray(k, dtype=np.float64)
    return np.log(scipy.special.ive(v, k)) + k


def scipy_ratio(v, k):
    return scipy.special.ive(v + 1, k) / scipy.special.ive(v, k)


# ---------------------------------------------------------------------------------------------------------- log Bessel


@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 1.5, 4.0, 9.5, 24.0, 29.5, 30.0, 49.0, 60.0])
def test_log_bessel_matches_scipy(v):
    k = torch.logspace(-3, 4, 300, dtype=F64)
    ref = scipy_log_iv(v, k.numpy())
    got = log_bessel_iv(v, k).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(bessel_iv_ratio(v, k).numpy(), scipy_ratio(v, k.numpy()), rtol=1e-10, atol=0)


@pytest.mark.parametrize("v", [0.0, 0.5, 4.0, 49.0])
def test_log_bessel_gradients(v):
    k = torch.logspace(-3, 4, 50, dtype=F64).requires_grad_()
    (g,) = torch.autograd.grad(log_bessel_iv(v, k).sum(), k)
    expected = scipy_ratio(v, k.detach().numpy()) + v / k.detach().numpy()  # d/dk log I_v = I_{v+1}/I_v + v/k
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-10)
    k2 = torch.tensor([1e-2, 0.7, 3.0, 40.0, 800.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: bessel_iv_ratio(v, x), (k2,))
    assert torch.autograd.gradgradcheck(lambda x: log_bessel_iv(v, x), (k2,))


def test_log_bessel_extreme_arguments_are_finite():
    k = torch.tensor([1e-30, 1e-8, 1e6, 1e9], dtype=F64)
    for v in (0.0, 49.0):
        out = log_bessel_iv(v, k)
        assert torch.isfinite(out).all()
    # leading terms: log I_v(k) ~ v log(k/2) - lgamma(v+1) for small k, k - log(2 pi k)/2 for large k
    assert log_bessel_iv(49.0, k[:1]).item() == pytest.approx(49 * math.log(5e-31) - math.lgamma(50), rel=1e-14)
    assert log_bessel_iv(0.0, k[-1:]).item() == pytest.approx(1e9 - 0.5 * math.log(2 * math.pi * 1e9), rel=1e-14)


# ------------------------------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("kappa", [1e-3, 0.3, 2.0, 20.0, 150.0])
def test_circle_density_integrates_to_one(kappa):
    mu = unit(2)
    theta = torch.arange(20000, dtype=F64) * (2 * math.pi / 20000)  # periodic trapezoid: spectrally accurate
    x = torch.stack([theta.cos(), theta.sin()], -1)
    p = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64)).log_prob(x).exp()
    assert (p.sum() * 2 * math.pi / 20000).item() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("m", [3, 10])
@pytest.mark.parametrize("kappa", [1e-3, 0.5, 5.0, 50.0, 500.0])
def test_sphere_density_integrates_to_one(m, kappa):
    """Integral over the polar angle from mu with the area element |S^{m-2}| sin^{m-2}(theta)."""
    mu, perp = orthonormal_pair(m)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))
    log_ring = log_sphere_area(m - 1)

    def integrand(theta):
        x = math.cos(theta) * mu + math.sin(theta) * perp
        return math.exp(q.log_prob(x).item() + log_ring + (m - 2) * math.log(max(math.sin(theta), 1e-300)))

    peak = min(math.pi, 30 / math.sqrt(kappa))  # all but a negligible mass lies within this angle
    total = scipy.integrate.quad(integrand, 0, peak, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    if peak < math.pi:
        total += scipy.integrate.quad(integrand, peak, math.pi, epsabs=1e-13, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("kappa", [1e-3, 0.1, 1.0, 10.0, 100.0, 700.0, 5000.0])
def test_closed_forms(kappa):
    x = unit(7, 3)
    mu = unit(3)
    k = torch.tensor(kappa, dtype=F64)
    # m = 3: kappa / (4 pi sinh kappa) exp(kappa mu^T x); log sinh k = k + log1p(-exp(-2k)) - log 2
    log_sinh = kappa + math.log1p(-math.exp(-2 * kappa)) - math.log(2)
    expected = math.log(kappa) - math.log(4 * math.pi) - log_sinh + kappa * (x @ mu)
    torch.testing.assert_close(VonMisesFisher(mu, k).log_prob(x), expected, rtol=1e-12, atol=1e-12)
    # m = 2: exp(kappa cos) / (2 pi I_0(kappa))
    x2, mu2 = unit(7, 2), unit(2)
    expected2 = kappa * (x2 @ mu2) - math.log(2 * math.pi) - scipy_log_iv(0, kappa)
    torch.testing.assert_close(VonMisesFisher(mu2, k).log_prob(x2), expected2, rtol=1e-12, atol=1e-12)
    # m = 10 against scipy's Bessel function
    x10, mu10 = unit(7, 10), unit(10)
    expected10 = 4 * math.log(kappa) - 5 * math.log(2 * math.pi) - scipy_log_iv(4, kappa) + kappa * (x10 @ mu10)
    torch.testing.assert_close(VonMisesFisher(mu10, k).log_prob(x10), expected10, rtol=1e-11, atol=1e-10)
    # m = 3 mean resultant length and KL to the uniform: A = coth k - 1/k, KL = k coth k - 1 + log(k / sinh k)
    q = VonMisesFisher(mu, k)
    coth = 1 / math.tanh(kappa)
    a3 = coth - 1 / kappa if kappa > 1e-2 else kappa / 3 - kappa**3 / 45
    assert q.mean_resultant_length().item() == pytest.approx(a3, rel=1e-10)
    torch.testing.assert_close(q.mean, a3 * mu, rtol=1e-10, atol=0)
    kl = kl_divergence(q, HypersphericalUniform(3))
    kl3 = kappa * a3 + math.log(kappa) - log_sinh if kappa > 1e-2 else kappa**2 / 6
    assert kl.item() == pytest.approx(kl3, rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------------------------------------------------ sampling


@pytest.mark.parametrize("m", [3, 10])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0, 500.0])
def test_sample_mean_resultant_length(m, kappa):
    n = 20000
    mu = unit(m)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64))
    z = q.sample((n,))
    assert z.shape == (n, m)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(n, dtype=F64), rtol=0, atol=1e-12)
    a = q.mean_resultant_length().item()
    w = z @ mu
    assert abs(w.mean().item() - a) < 4.5 * w.std().item() / math.sqrt(n)
    # the whole mean vector: A_m(kappa) mu, componentwise
    se = z.std(0) / math.sqrt(n)
    assert ((z.mean(0) - a * mu).abs() < 4.5 * se + 1e-12).all()


@pytest.mark.parametrize("kappa", [0.5, 5.0, 200.0])
def test_sample_law_kolmogorov_smirnov(kappa):
    """Exact laws: on S^2, w = mu^T z has CDF (e^{k w} - e^{-k}) / (e^k - e^{-k}); on S^1 the angle is von Mises."""
    n = 4000
    mu = unit(3)
    w = (VonMisesFisher(mu, torch.tensor(kappa, dtype=F64)).sample((n,)) @ mu).numpy()
    cdf = lambda t: np.exp(kappa * (t - 1)) * np.expm1(-kappa * (t + 1)) / np.expm1(-2 * kappa)  # noqa: E731
    assert scipy.stats.kstest(w, cdf).pvalue > 1e-3
    mu2 = unit(2)
    z = VonMisesFisher(mu2, torch.tensor(kappa, dtype=F64)).sample((n,))
    angle = torch.atan2(z[:, 1], z[:, 0]) - torch.atan2(mu2[1], mu2[0])
    angle = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
    assert scipy.stats.kstest(angle.numpy(), scipy.stats.vonmises(kappa).cdf).pvalue > 1e-3


@pytest.mark.parametrize("m", [2, 3, 10, 100])
@pytest.mark.parametrize("kappa", [1e-3, 1e4])
def test_extreme_parameters_float32(m, kappa):
    eta = torch.randn(64, m, requires_grad=True)
    k = torch.full((64,), kappa, requires_grad=True)
    q = VonMisesFisher(eta / eta.norm(dim=-1, keepdim=True), k)
    z = q.rsample((4,))
    assert z.dtype == torch.float32 and z.shape == (4, 64, m)
    lp, kl = q.log_prob(z), kl_divergence(q, HypersphericalUniform(m))
    grads = torch.autograd.grad(lp.sum() + z.sum() + kl.sum() + q.rejection_score(z).sum(), [eta, k])
    for t in (z, lp, kl, *grads):
        assert torch.isfinite(t).all()
    assert ((z.norm(dim=-1) - 1).abs() < 1e-6).all()
    assert (kl >= 0).all()


# ----------------------------------------------------------------------------------------------------------- gradients


def _per_sample_kappa_gradients(m, kappa, n, corrected=True):
    """Each sample gets its own copy of kappa, so the gradient wrt kappa_i is sample i's estimate of d E[w] / d kappa
    (w = mu^T z, E[w] = A_m(kappa)); the score term gets the baseline A (valid: the score has mean zero)."""
    mu = unit(m)
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)
    q = VonMisesFisher(mu.expand(n, m), k)
    z = q.rsample()
    w = z @ mu
    surrogate = w
    if corrected:
        surrogate = surrogate + (w.detach() - q.mean_resultant_length().detach()) * q.rejection_score(z)
    (g,) = torch.autograd.grad(surrogate.sum(), k)
    k0 = torch.tensor(kappa, dtype=F64, requires_grad=True)
    (exact,) = torch.autograd.grad(bessel_iv_ratio(m / 2 - 1, k0), k0)
    return g, exact.item()


@pytest.mark.parametrize("m", [2, 3, 10])
@pytest.mark.parametrize("kappa", [0.5, 2.0, 5.0, 50.0])
def test_kappa_gradient_matches_dA_dkappa(m, kappa):
    g, exact = _per_sample_kappa_gradients(m, kappa, 30000)
    se = g.std().item() / math.sqrt(len(g))
    assert abs(g.mean().item() - exact) < 4.5 * se, (g.mean().item(), exact, se)


def test_paper_gradient_without_correction_is_biased():
    """Documents why score_parts carries the rejection correction: g_rep alone misses d A/d kappa at moderate kappa."""
    g, exact = _per_sample_kappa_gradients(3, 2.0, 30000, corrected=False)
    se = g.std().item() / math.sqrt(len(g))
    assert g.mean().item() < exact - 10 * se


def test_loc_gradient_matches_closed_form():
    """E[t^T z] = A t^T mu with mu = eta/|eta|: gradient A (I - mu mu^T) t / |eta|."""
    m, n, kappa = 5, 20000, 3.0
    t, eta0 = unit(m), torch.randn(m, dtype=F64)
    eta = eta0.expand(n, m).clone().requires_grad_()
    mu = eta / eta.norm(dim=-1, keepdim=True)
    z = VonMisesFisher(mu, torch.tensor(kappa, dtype=F64)).rsample()
    (g,) = torch.autograd.grad((z @ t).sum(), eta)
    mu0 = eta0 / eta0.norm()
    a = VonMisesFisher(mu0, torch.tensor(kappa, dtype=F64)).mean_resultant_length()
    expected = a * (t - mu0 * (mu0 @ t)) / eta0.norm()
    se = g.std(0) / math.sqrt(n)
    assert ((g.mean(0) - expected).abs() < 4.5 * se).all()


def test_trace_elbo_gradient_is_unbiased():
    """With rejection_correction=True, Pyro's Trace_ELBO picks up the correction through score_parts: z ~ U(S^2),
    factor c t^T z, guide vMF(mu, kappa), -ELBO = -(c A t^T mu - KL), differentiated in closed form."""
    m, n, c, kappa = 3, 20000, 2.0, 2.0
    t = unit(m)
    mu0 = unit(m)
    k = torch.full((n,), kappa, dtype=F64, requires_grad=True)

    def model():
        with pyro.plate("data", n):
            z = pyro.sample("z", HypersphericalUniform(m, dtype=F64))
            pyro.factor("f", c * (z @ t))

    def guide():
        with pyro.plate("data", n):
            pyro.sample("z", VonMisesFisher(mu0.expand(n, m), k, rejection_correction=True))

    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model, guide)
    (g,) = torch.autograd.grad(loss, k)  # per data point: its own kappa
    k0 = torch.tensor(kappa, dtype=F64, requires_grad=True)
    q = VonMisesFisher(mu0, k0)
    exact = -(c * q.mean_resultant_length() * (t @ mu0) - kl_divergence(q, HypersphericalUniform(m)))
    (ge,) = torch.autograd.grad(exact, k0)
    se = g.std().item() / math.sqrt(n)
    assert abs(g.mean().item() - ge.item()) < 4.5 * se


def test_default_is_fully_reparameterised_and_uses_the_analytic_kl():
    """By default (the paper's estimator) TraceMeanField_ELBO accepts the site and uses the registered closed-form KL:
    with no likelihood the loss is exactly sum KL(vMF || U)."""
    m, n = 4, 6
    mu, k = unit(n, m), torch.linspace(0.1, 30.0, n, dtype=F64)

    def model():
        with pyro.plate("data", n):
            pyro.sample("z", HypersphericalUniform(m, dtype=F64))

    def guide():
        with pyro.plate("data", n):
            pyro.sample("z", VonMisesFisher(mu, k))

    loss = TraceMeanField_ELBO().differentiable_loss(model, guide)
    kl = kl_divergence(VonMisesFisher(mu, k), HypersphericalUniform(m)).sum()
    assert loss.item() == pytest.approx(kl.item(), rel=1e-12)
    z = VonMisesFisher(mu, k).rsample()
    assert VonMisesFisher(mu, k).score_parts(z).score_function == 0


# --------------------------------------------------------------------------------------------------- KL and entropy


@pytest.mark.parametrize("m", [2, 3, 10])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_kl_and_entropy_match_monte_carlo(m, kappa):
    n = 20000
    q = VonMisesFisher(unit(m), torch.tensor(kappa, dtype=F64))
    p = HypersphericalUniform(m, dtype=F64)
    z = q.sample((n,))
    log_q = q.log_prob(z)
    se = log_q.std().item() / math.sqrt(n)
    assert abs(q.entropy().item() - (-log_q.mean().item())) < 4.5 * se + 1e-12
    log_ratio = log_q - p.log_prob(z)
    assert abs(kl_divergence(q, p).item() - log_ratio.mean().item()) < 4.5 * se + 1e-12
    assert q.entropy().item() < log_sphere_area(m)  # the uniform has maximal entropy


@pytest.mark.parametrize("m", [2, 3, 10, 100])
def test_kl_vanishes_as_kappa_goes_to_zero(m):
    k = torch.tensor([1e-3, 1e-2], dtype=F64)
    kl = kl_divergence(VonMisesFisher(unit(m).expand(2, m), k), HypersphericalUniform(m))
    torch.testing.assert_close(kl, k**2 / (2 * m), rtol=1e-3, atol=0)  # KL ~ kappa^2 / (2m)
    kl32 = kl_divergence(VonMisesFisher(unit(m, dtype=torch.float32), torch.tensor(1e-3)), HypersphericalUniform(m))
    assert 0 <= kl32.item() < 1e-6


# -------------------------------------------------------------------------------------------------------------- uniform


@pytest.mark.parametrize("m", [2, 3, 10])
def test_hyperspherical_uniform(m):
    p = HypersphericalUniform(m, dtype=F64).expand([4])
    assert p.batch_shape == (4,) and p.event_shape == (m,)
    x = p.sample((5000,))
    assert x.shape == (5000, 4, m) and x.dtype == F64
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(5000, 4, dtype=F64))
    assert (x.mean(0).abs() < 4.5 / math.sqrt(m * 5000)).all()
    area = {2: 2 * math.pi, 3: 4 * math.pi, 10: 2 * math.pi**5 / math.factorial(4)}[m]
    torch.testing.assert_close(p.log_prob(x), torch.full((5000, 4), -math.log(area), dtype=F64))
    torch.testing.assert_close(p.entropy(), torch.full((4,), math.log(area), dtype=F64))


def test_shapes_expand_and_broadcasting():
    q = VonMisesFisher(unit(3), torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    assert q.batch_shape == (3,) and q.event_shape == (3,)
    e = q.expand([2, 3])
    assert e.batch_shape == (2, 3) and e.rsample((5,)).shape == (5, 2, 3, 3)
    assert kl_divergence(e, HypersphericalUniform(3)).shape == (2, 3)
    assert kl_divergence(q, HypersphericalUniform(3).expand([2, 3])).shape == (2, 3)
    assert q.log_prob(unit(4, 1, 3)).shape == (4, 3)
    with pytest.raises(ValueError):
        kl_divergence(q, HypersphericalUniform(4))
