"""The fast paths that evaluation and training take through the Bernoulli image likelihood and the standard-normal KL,
each against the plain torch computation they replace (value and gradient)."""
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

from zoo.likelihoods import BernoulliLogits, BernoulliLogitsImage, build_likelihood
from zoo.priors import StandardNormal, build_prior

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reference_log_prob(logits, value):
    return torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(value).sum(-1)


@pytest.mark.parametrize("binary", [True, False])
def test_bernoulli_image_log_prob_without_autograd_is_the_sum_of_pixel_log_masses(binary):
    torch.manual_seed(0)
    logits = 4 * torch.randn(7, 5, 30, dtype=torch.float64)  # (particles, points, pixels)
    x = torch.rand(5, 30, dtype=torch.float64)
    x = (x < 0.4).double() if binary else x
    d = build_likelihood("bernoulli", 30)(logits)
    assert isinstance(d, BernoulliLogitsImage)
    with torch.no_grad():
        got = d.log_prob(x)
    assert got.shape == (7, 5)
    torch.testing.assert_close(got, _reference_log_prob(logits, x), rtol=1e-12, atol=1e-10)


def test_bernoulli_image_log_prob_under_autograd_has_the_reference_value_and_gradient():
    torch.manual_seed(1)
    logits = (3 * torch.randn(4, 6, 20, dtype=torch.float64)).requires_grad_()
    x = (torch.rand(6, 20, dtype=torch.float64) < 0.5).double()
    got = BernoulliLogitsImage(BernoulliLogits(logits=logits, validate_args=False), 1).log_prob(x)
    want = _reference_log_prob(logits, x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)
    w = torch.randn(4, 6, dtype=torch.float64)
    g_got, = torch.autograd.grad((got * w).sum(), logits)
    g_want, = torch.autograd.grad((want * w).sum(), logits)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)


def test_bernoulli_image_keeps_working_after_pyro_expands_it():
    logits = torch.randn(5, 8)
    d = build_likelihood("bernoulli", 8)(logits).expand([3, 5])
    x = (torch.rand(5, 8) < 0.5).float()
    with torch.no_grad():
        torch.testing.assert_close(d.log_prob(x), _reference_log_prob(logits, x).expand(3, 5))


def test_standard_normal_kl_equals_the_general_normal_kl_with_its_gradient():
    torch.manual_seed(2)
    loc = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(6, 4, dtype=torch.float64) + 0.1).requires_grad_()
    q = dist.Normal(loc, scale).to_event(1)
    prior = build_prior("standard", 4)(6, loc.detach())
    assert isinstance(prior.base_dist, StandardNormal)
    general = dist.Normal(torch.zeros(6, 4, dtype=torch.float64), 1.0).to_event(1)
    got, want = kl_divergence(q, prior), kl_divergence(q, general)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got = torch.autograd.grad(got.sum(), (loc, scale))
    g_want = torch.autograd.grad(want.sum(), (loc, scale))
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_standard_prior_is_rebuilt_when_the_batch_or_dtype_changes():
    prior = build_prior("standard", 3)
    a = prior(4, torch.zeros(1))
    assert prior(4, torch.zeros(1)) is a
    b = prior(5, torch.zeros(1))
    c = prior(5, torch.zeros(1, dtype=torch.float64))
    assert b.batch_shape == (5,) and c.base_dist.loc.dtype == torch.float64
