"""DiscretizedLogistic / DiscretizedMixLogistic: normalisation, exact bin masses, sampling law, shapes."""
import math

import mpmath
import numpy as np
import pyro
import pytest
import scipy.stats
import torch
from pyro import poutine

from zoo.distributions import DiscretizedLogistic, DiscretizedMixLogistic, discretized_grid

F64 = torch.float64
LOCS = [-3.0, -0.01, 0.0, 0.37, 0.5, 1.0, 1.02, 4.0]
LOG_SCALES = [-12.0, -7.0, -3.0, 0.0, 3.0, 30.0, 200.0]


def reference_log_mass(x, loc, log_scale, num_bins=256):
    """log P(bin of x) as the direct difference of logistic CDFs in 60-digit arithmetic (mpmath, whose exponent range
    is unbounded): F(b) - F(a) below the median, S(a) - S(b) above it (S = 1 - F); the ends take the tails."""
    n1 = num_bins - 1
    s = mpmath.exp(log_scale)
    out = []
    with mpmath.workdps(60):
        cdf = lambda t: 1 / (1 + mpmath.exp(-(t - mpmath.mpf(loc)) / s))  # noqa: E731
        sf = lambda t: 1 / (1 + mpmath.exp((t - mpmath.mpf(loc)) / s))  # noqa: E731
        for xi in x:
            k = int(round(float(xi) * n1))
            lo, hi = mpmath.mpf(2 * k - 1) / (2 * n1), mpmath.mpf(2 * k + 1) / (2 * n1)
            if k == 0:
                mass = cdf(hi)
            elif k == n1:
                mass = sf(lo)
            elif lo > loc:
                mass = sf(lo) - sf(hi)
            else:
                mass = cdf(hi) - cdf(lo)
            out.append(float(mpmath.log(mass)))
    return np.array(out)


@pytest.mark.parametrize("num_bins", [256, 2, 16])
def test_probabilities_sum_to_one(num_bins):
    loc, log_scale = torch.meshgrid(torch.tensor(LOCS, dtype=F64), torch.tensor(LOG_SCALES, dtype=F64), indexing="ij")
    d = DiscretizedLogistic(loc, log_scale, num_bins=num_bins)
    support = d.enumerate_support()
    assert support.shape == (num_bins,) + loc.shape
    total = d.log_prob(support).exp().sum(0)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-6)
    assert (total - 1).abs().max() < 1e-12  # in fact exact to rounding


def test_float32_extreme_scales_sum_to_one_and_have_finite_gradients():
    """log_scale = 120 underflows exp(-log_scale) in float32: the bin-centre approximation takes over."""
    loc = torch.tensor([0.2, 0.5, -2.0, 3.0, 0.5], requires_grad=True)
    log_scale = torch.tensor([120.0, -20.0, -20.0, 50.0, 88.0], requires_grad=True)
    d = DiscretizedLogistic(loc, log_scale)
    lp = d.log_prob(d.enumerate_support())
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.exp().sum(0), torch.ones(5), rtol=0, atol=1e-5)
    grads = torch.autograd.grad(lp.logsumexp(0).sum() + lp[128].sum(), [loc, log_scale])
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("loc", LOCS)
def test_log_prob_equals_cdf_difference(loc):
    x = discretized_grid(256, dtype=F64)
    for log_scale in [-9.0, -5.0, -2.0, 0.0, 2.0, 25.0]:
        d = DiscretizedLogistic(torch.tensor(loc, dtype=F64), torch.tensor(log_scale, dtype=F64))
        got = d.log_prob(x).numpy()
        # the exact difference of CDFs (high precision), over all bins: tails and tiny bins included
        np.testing.assert_allclose(got, reference_log_mass(x.numpy(), loc, log_scale), rtol=1e-10, atol=1e-12)
        # and the plain float64 difference of sigmoids where it neither underflows nor cancels
        s = math.exp(log_scale)
        upper = torch.where(x >= 1, torch.ones_like(x), torch.sigmoid((x + 0.5 / 255 - loc) / s))
        lower = torch.where(x <= 0, torch.zeros_like(x), torch.sigmoid((x - 0.5 / 255 - loc) / s))
        naive = upper - lower
        ok = (naive > 1e-6).numpy()
        np.testing.assert_allclose(got[ok], naive.log().numpy()[ok], rtol=1e-8, atol=1e-9)


def test_edge_bins_take_the_tails():
    loc, s = torch.tensor(0.3, dtype=F64), 0.1
    d = DiscretizedLogistic(loc, torch.tensor(math.log(s), dtype=F64))
    x = torch.tensor([0.0, 1.0], dtype=F64)
    expected = torch.stack([torch.sigmoid((0.5 / 255 - loc) / s), 1 - torch.sigmoid((1 - 0.5 / 255 - loc) / s)])
    torch.testing.assert_close(d.log_prob(x).exp(), expected, rtol=1e-12, atol=0)
    # far outside [0, 1] all the mass goes to an end bin
    far = DiscretizedLogistic(torch.tensor([-50.0, 50.0], dtype=F64), torch.tensor([-3.0, -3.0], dtype=F64))
    torch.testing.assert_close(far.log_prob(torch.tensor([0.0, 1.0], dtype=F64)), torch.zeros(2, dtype=F64))


def _chi_square_pvalue(samples, log_pmf, num_bins=256):
    counts = np.bincount(np.round(samples * (num_bins - 1)).astype(int), minlength=num_bins).astype(float)
    expected = np.exp(log_pmf) * len(samples)
    big = expected >= 5  # pool the sparse bins into one cell
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] < 5:
        obs, exp = obs[:-1], exp[:-1]
        exp = exp * obs.sum() / exp.sum()
    return scipy.stats.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("loc,log_scale", [(0.3, math.log(0.05)), (0.01, math.log(0.02)), (0.97, -3.0),
                                           (0.5, -6.0), (0.5, 1.0)])
def test_samples_on_grid_and_histogram_matches_pmf(loc, log_scale):
    n = 40000
    d = DiscretizedLogistic(torch.tensor(loc, dtype=F64), torch.tensor(log_scale, dtype=F64))
    x = d.sample((n,))
    assert x.shape == (n,)
    k = x * 255
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-9)
    assert ((x >= 0) & (x <= 1)).all()
    log_pmf = d.log_prob(discretized_grid(256, dtype=F64)).numpy()
    assert _chi_square_pvalue(x.numpy(), log_pmf) > 1e-3


def _mixture_params(batch=(), k=3, dtype=F64):
    logits = torch.randn(*batch, k, dtype=dtype)
    locs = torch.tensor([0.1, 0.55, 0.9], dtype=dtype)[:k].expand(*batch, k)
    locs = locs + 0.05 * torch.randn(*batch, k, dtype=dtype)
    log_scales = torch.tensor([-3.0, -5.0, -2.0], dtype=dtype)[:k].expand(*batch, k).clone()
    return logits, locs, log_scales


def test_mixture_sums_to_one_and_matches_weighted_components():
    logits, locs, log_scales = _mixture_params((4, 2))
    log_scales[0, 0] = torch.tensor([-12.0, 30.0, 0.0], dtype=F64)  # extreme components
    locs[1, 1] = torch.tensor([-4.0, 5.0, 0.5], dtype=F64)
    d = DiscretizedMixLogistic(logits, locs, log_scales)
    assert d.batch_shape == (4, 2) and d.event_shape == () and d.num_components == 3
    support = d.enumerate_support()
    total = d.log_prob(support).exp().sum(0)
    torch.testing.assert_close(total, torch.ones(4, 2, dtype=F64), rtol=0, atol=1e-6)
    x = support[77]
    weights = torch.softmax(logits, -1)
    manual = sum(weights[..., j] * DiscretizedLogistic(locs[..., j], log_scales[..., j]).log_prob(x).exp()
                 for j in range(3))
    torch.testing.assert_close(d.log_prob(x).exp(), manual, rtol=1e-12, atol=0)


def test_mixture_samples_match_pmf():
    n = 40000
    logits, locs, log_scales = _mixture_params()
    d = DiscretizedMixLogistic(logits, locs, log_scales)
    x = d.sample((n,))
    assert x.shape == (n,)
    torch.testing.assert_close(x * 255, (x * 255).round(), rtol=0, atol=1e-9)
    log_pmf = d.log_prob(discretized_grid(256, dtype=F64)).numpy()
    assert _chi_square_pvalue(x.numpy(), log_pmf) > 1e-3


def test_shapes_expand_mean_and_pyro_observation():
    loc = torch.rand(2, 1, 5, 5)
    d = DiscretizedLogistic(loc, torch.full((1, 5, 5), -3.0))
    assert d.batch_shape == (2, 1, 5, 5) and d.event_shape == ()
    assert d.sample((3,)).shape == (3, 2, 1, 5, 5)
    img = d.to_event(3)
    x = img.sample()
    assert img.log_prob(x).shape == (2,)
    assert d.expand([4, 2, 1, 5, 5]).sample().shape == (4, 2, 1, 5, 5)
    assert d.enumerate_support(expand=False).shape == (256, 1, 1, 1, 1)
    # mean: exact sum over the grid; for a narrow logistic inside [0, 1] it is loc to within the bin rounding
    narrow = DiscretizedLogistic(torch.tensor([0.3, 0.6], dtype=F64), torch.tensor([-4.0, -4.0], dtype=F64))
    torch.testing.assert_close(narrow.mean, torch.tensor([0.3, 0.6], dtype=F64), rtol=0, atol=1e-4)
    m = DiscretizedMixLogistic(*_mixture_params((2, 1, 5, 5), dtype=torch.float32))
    assert m.batch_shape == (2, 1, 5, 5) and m.sample((3,)).shape == (3, 2, 1, 5, 5)
    assert m.expand([6, 2, 1, 5, 5]).log_prob(x).shape == (6, 2, 1, 5, 5)
    assert m.mean.shape == (2, 1, 5, 5)

    def model():
        with pyro.plate("data", 2):
            pyro.sample("x", DiscretizedLogistic(loc, torch.full_like(loc, -3.0)).to_event(3), obs=x)
            pyro.sample("y", DiscretizedMixLogistic(*_mixture_params((2, 1, 5, 5), dtype=torch.float32)).to_event(3),
                        obs=x)

    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["x"]["log_prob"].shape == (2,) and tr.nodes["y"]["log_prob"].shape == (2,)


def test_validation_rejects_values_off_the_grid():
    d = DiscretizedLogistic(torch.zeros(3), torch.zeros(3), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0.5, 0.1, 0.2]))  # 0.5 is between two bins
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([1.2, 0.0, 0.0]))
    d.log_prob(torch.tensor([128 / 255, 0.0, 1.0]))
