"""The estimators against exact values: a linear-Gaussian VAE has log p(x) = log N(x; b, W W^T + s^2 I)."""
import math

import numpy as np

import pyro
import pytest
import torch

from guides.base import build_guide
from inference.evaluation import importance_sample
from inference.importance import log_mean_exp, weight_terms
from inference.jackknife import jackknife_log_px
from inference.objectives import build_objective
from inference.psis import pareto_khat, pareto_khat_from_top, tail_length
from inference.training import TrainConfig, Trainer
from zoo.data.base import Dataset, Split
from zoo.vae import VAE

SIGMA = 0.5


def _linear_gaussian_data(n=600, data_dim=5, latent_dim=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(data_dim, latent_dim, generator=g)
    b = torch.randn(data_dim, generator=g)
    z = torch.randn(n, latent_dim, generator=g)
    x = z @ w.T + b + SIGMA * torch.randn(n, data_dim, generator=g)
    return Dataset("synthetic", Split(x[:400]), Split(x[400:500]), Split(x[500:]), binarize="none")


def _exact_log_px(model, x):
    lin = model.decoder[0]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    cov = w @ w.T + torch.diag(model.likelihood.log_sigma.detach().double().exp() ** 2)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x.double())


@pytest.fixture(scope="module")
def trained_linear(tmp_path_factory):
    pyro.set_rng_seed(0)
    data = _linear_gaussian_data()
    model = VAE(data.dim, latent_dim=2, hidden=(), likelihood="gaussian", sigma=SIGMA)
    guide = build_guide("diagonal", model)
    cfg = TrainConfig(epochs=30, batch_size=50, lr=1e-2, seed=0, progress=False)
    Trainer(model, guide, build_objective("elbo"), data, cfg, str(tmp_path_factory.mktemp("lin")), "vae").fit()
    model.eval(), guide.eval()
    return model, guide, data


def test_importance_sampled_log_likelihood_matches_exact_marginal(trained_linear):
    model, guide, data = trained_linear
    x = data.test.x
    exact = _exact_log_px(model, x)
    torch.manual_seed(1)
    est = importance_sample(model, guide, x, num_samples=5000, batch_size=50)
    log_px = torch.as_tensor(est["log_px"])
    assert (log_px - exact).abs().mean() < 0.05
    # the ELBO is a lower bound of the exact log-likelihood, point by point up to MC error, and on average
    assert (torch.as_tensor(est["elbo"]) <= exact + 1e-3).all()
    assert torch.as_tensor(est["elbo"]).mean() < exact.mean() - 1e-3


def test_small_chunks_give_the_same_estimate(trained_linear):
    """Chunking particles bounds memory without changing the estimator."""
    model, guide, data = trained_linear
    x = data.test.x[:20]
    torch.manual_seed(3)
    a = importance_sample(model, guide, x, num_samples=300, batch_size=20)
    torch.manual_seed(3)
    b = importance_sample(model, guide, x, num_samples=300, batch_size=20, budget=20 * 5 * 7)  # chunks of 7
    assert abs(a["log_px"].mean() - b["log_px"].mean()) < 0.05
    assert abs(a["log_px"].mean() - _exact_log_px(model, x).mean().item()) < 0.1


def test_streamed_log_px_and_khat_equal_those_of_all_the_log_weights(trained_linear):
    """The running logsumexp over chunks and the k-hat from the O(sqrt K) largest weights are the values that all K
    log-weights give (the evaluation no longer holds them; keep_log_weights still returns them for the export)."""
    model, guide, data = trained_linear
    x = data.test.x[:30]
    for k, budget in ((400, 30 * 5 * 7), (60, 30 * 5 * 60), (7, 30 * 5 * 2)):
        torch.manual_seed(4)
        est = importance_sample(model, guide, x, num_samples=k, batch_size=12, budget=budget, keep_log_weights=True)
        log_w = torch.as_tensor(est["log_weights"]).double()  # (points, K)
        assert log_w.shape == (30, k)
        np.testing.assert_allclose(est["log_px"], (torch.logsumexp(log_w, 1) - math.log(k)).numpy(),
                                   rtol=0, atol=1e-9)
        np.testing.assert_array_equal(est["khat"], pareto_khat(log_w.numpy()))
        # the K-sweep is the same estimate from the first k weights (streamed across chunk borders), and the
        # jackknife the one of all K weights
        sweep = [s for s in (1, 10, 100, 1000, 5000) if s < k] + [k]
        assert sorted(est["log_px_sweep"]) == sweep
        for s in sweep:
            np.testing.assert_allclose(est["log_px_sweep"][s], (torch.logsumexp(log_w[:, :s], 1) - math.log(s)).numpy(),
                                       rtol=0, atol=1e-9)
        np.testing.assert_allclose(est["log_px_jackknife"], jackknife_log_px(log_w.T).numpy(), rtol=0, atol=1e-9)


def test_k_sweep_and_jackknife_approach_the_exact_log_likelihood(trained_linear):
    """The IWAE estimate's bias shrinks as K grows (its mean rises towards the exact value), and the jackknife at the
    same K is closer to the exact value than the IWAE estimate (bias O(1/K^2) instead of O(1/K))."""
    model, guide, data = trained_linear
    x = data.test.x
    exact = _exact_log_px(model, x).mean().item()
    torch.manual_seed(6)
    est = importance_sample(model, guide, x, num_samples=100, batch_size=50)
    means = [est["log_px_sweep"][k].mean() for k in (1, 10, 100)]
    assert means[0] < means[1] < means[2] < exact + 0.01
    assert abs(est["log_px_jackknife"].mean() - exact) < abs(means[2] - exact)


def test_khat_from_the_largest_weights_equals_khat_from_all_of_them():
    rng = np.random.default_rng(0)
    for k in (5, 9, 50, 1000, 20000):
        log_w = rng.standard_t(df=2, size=(6, k)) * 2  # heavy tails: k-hat well away from 0
        m = tail_length(k) + 1
        top = -np.sort(-log_w, axis=1)[:, :m]
        rng.shuffle(top, axis=1)  # any order
        np.testing.assert_array_equal(pareto_khat_from_top(top, k), pareto_khat(log_w))
    with pytest.raises(ValueError, match="largest log-weights"):
        pareto_khat_from_top(top[:, :3], 20000)


def test_bf16_evaluation_keeps_float32_weights_and_is_close_to_float32(trained_linear):
    model, guide, data = trained_linear
    x = data.test.x[:40]
    torch.manual_seed(5)
    full = importance_sample(model, guide, x, num_samples=200, batch_size=40)
    torch.manual_seed(5)
    half = importance_sample(model, guide, x, num_samples=200, batch_size=40, precision="bf16",
                             keep_log_weights=True)
    assert half["log_weights"].dtype == np.float32
    assert not np.array_equal(full["log_px"], half["log_px"])  # the networks did run in bfloat16
    assert np.abs(full["log_px"] - half["log_px"]).mean() < 0.05


def test_iwae_bound_increases_with_k(trained_linear):
    model, guide, data = trained_linear
    x = data.test.x
    torch.manual_seed(2)
    reps = 200
    bounds = {}
    for k in (1, 5, 50):
        terms = weight_terms(model, guide, x.repeat(reps, 1), None, k)
        per_point = log_mean_exp(terms.log_w, 0).reshape(reps, -1).mean(0)  # (points,) averaged over reps
        bounds[k] = per_point.mean().item()
        bounds[f"se{k}"] = (per_point.std() / math.sqrt(len(per_point)) / math.sqrt(1.0)).item()
    exact = _exact_log_px(model, x).mean().item()
    assert bounds[1] <= bounds[5] + 3 * bounds["se5"] / math.sqrt(reps)
    assert bounds[1] < bounds[5] < bounds[50] <= exact + 1e-2


def test_iwae_k1_equals_the_elbo_on_the_same_draw():
    """With K=1 the IWAE loss is exactly -(log p(x,z) - log q(z|x)) = Trace_ELBO's loss for the same z."""
    torch.manual_seed(0)
    model = VAE(12, latent_dim=3, hidden=(8,), likelihood="bernoulli")
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(7, 12))
    pyro.set_rng_seed(5)
    iwae1 = build_objective("iwae:1").loss(model, guide, x)
    pyro.set_rng_seed(5)
    trace_elbo = pyro.infer.Trace_ELBO().differentiable_loss(model, guide, x)
    assert torch.allclose(iwae1, trace_elbo, rtol=1e-5)
    # and the analytic-KL `elbo` agrees with it in expectation
    pyro.set_rng_seed(6)
    many = x.repeat(2000, 1)
    mc = build_objective("iwae:1").loss(model, guide, many) / 2000
    analytic = build_objective("elbo").loss(model, guide, many) / 2000
    assert abs(mc - analytic) / abs(analytic) < 0.005


def test_kl_weight_scales_only_the_latent_terms():
    """-ELBO_beta = -E log p(x|z) + beta KL: the analytic KL term scales, the reconstruction does not."""
    torch.manual_seed(0)
    model = VAE(12, latent_dim=3, hidden=(8,), likelihood="bernoulli")
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(7, 12))
    obj = build_objective("elbo")
    losses = {}
    for beta in (0.0, 1.0, 3.0):
        obj.kl_weight = beta
        pyro.set_rng_seed(9)
        losses[beta] = obj.loss(model, guide, x).item()
    recon, kl = losses[0.0], losses[1.0] - losses[0.0]
    assert kl > 0
    assert losses[3.0] == pytest.approx(recon + 3 * kl, rel=1e-5)


def test_psis_khat_is_small_when_the_guide_is_close_to_the_posterior(trained_linear):
    """PSIS wiring: a near-exact guide (linear-Gaussian model) gives light-tailed weights, k-hat < 0.5; a guide
    whose scale is shrunk tenfold gives heavy-tailed weights and k-hat > 0.7 (Vehtari et al.)."""
    model, guide, data = trained_linear
    x = data.test.x[:40]
    torch.manual_seed(4)
    good = importance_sample(model, guide, x, num_samples=2000, batch_size=40)["khat"]
    head = guide.gaussian.heads["z"]
    saved = head.bias.detach().clone()
    with torch.no_grad():  # softplus(raw) -> much smaller scales: q far too narrow
        head.bias[2:] -= 6.0
    try:
        bad = importance_sample(model, guide, x, num_samples=2000, batch_size=40)["khat"]
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    assert np.median(good) < 0.5 and (good < 0.7).mean() > 0.9
    assert np.median(bad) > 0.7 and (bad > 0.7).mean() > 0.75
