"""The information decomposition of the ELBO's KL term (inference/information.py): its identities, draw by draw, and
each term against its closed form on a linear-Gaussian encoder."""
import math

import pyro
import pytest
import torch

from guides.base import build_guide
from inference.information import (evaluate_information, information_reason, information_samples,
                                   summarize_information)
from zoo.errors import ConfigError
from zoo.vae import VAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

A = torch.tensor([[0.8, -0.3, 0.5, 0.0, 0.2], [0.6, -0.1, 0.5, 0.3, 0.1]])  # rows alike: q(z) is correlated (TC > 0)
C = torch.tensor([0.5, -1.0])
S = torch.tensor([0.4, 0.7])
L = torch.tensor([[1.0, 0, 0, 0, 0], [0.5, 1.0, 0, 0, 0], [0, 0.3, 0.8, 0, 0], [0.2, 0, 0, 1.2, 0], [0, 0, 0.4, 0, 0.6]])
MU = torch.tensor([0.3, -0.2, 0.0, 0.5, 1.0])


def linear_encoder(n, scale=S, seed=0):
    """The zoo's VAE (5-dimensional data, z in R^2, no hidden layer: the encoder body is the identity) with its
    diagonal guide set by hand to q(z|x) = N(A x + c, diag(scale^2)), and n points x ~ N(MU, L L^T)."""
    model = VAE(5, latent_dim=2, hidden=(), likelihood="gaussian", sigma=0.5)
    guide = build_guide("diagonal", model)
    head = guide.gaussian.heads["z"]
    with torch.no_grad():
        head.weight.zero_()
        head.weight[:2] = A
        head.bias[:2] = C
        head.bias[2:] = torch.log(torch.expm1(scale - 1e-5))  # softplus(raw) + 1e-5 = scale
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g) @ L.T + MU
    return model, guide, x


def closed_forms(x):
    """Each term for the Gaussian aggregate q(z) = N(A mu + c, A Sigma A^T + diag s^2) of data with the points'
    mean mu and covariance Sigma:
        I_q = E_x KL(q(z|x) || q(z)) = (log det Sigma_agg - sum_j log s_j^2) / 2   (the traces cancel: d - d)
        marginal KL = KL(N(m, Sigma_agg) || N(0, I)) = (tr Sigma_agg + m^T m - d - log det Sigma_agg) / 2
        TC = KL(N(m, Sigma_agg) || prod_j N(m_j, Sigma_jj)) = (sum_j log Sigma_jj - log det Sigma_agg) / 2
        dimension-wise KL = sum_j (Sigma_jj + m_j^2 - 1 - log Sigma_jj) / 2,   KL term = I_q + marginal KL."""
    x, a, c, s2 = x.double(), A.double(), C.double(), S.double() ** 2
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / x.shape[0]
    m, sig = a @ mu + c, a @ cov @ a.T + torch.diag(s2)
    logdet, d = torch.logdet(sig), torch.diag(sig)
    out = {"mutual_information": 0.5 * (logdet - s2.log().sum()),
           "marginal_kl": 0.5 * (sig.trace() + m @ m - 2 - logdet),
           "total_correlation": 0.5 * (d.log().sum() - logdet),
           "dimensionwise_kl": (0.5 * (d + m ** 2 - 1 - d.log())).sum()}
    out["kl"] = out["mutual_information"] + out["marginal_kl"]
    return {k: float(v) for k, v in out.items()}


def test_the_terms_sum_back_to_the_kl_term_draw_by_draw():
    """I_q + marginal KL = E_n KL(q(z|x_n) || p(z)) and TC + dimension-wise KL = marginal KL on the same draws, and
    every draw's I_q term is at most log N (Hoffman & Johnson's bound)."""
    model, guide, x = linear_encoder(300)
    s = information_samples(model, guide, x, num_samples=3, batch_size=64)
    kl = s.log_q_own - s.log_p
    mi, mk = s.log_q_own - s.log_q_agg, s.log_q_agg - s.log_p
    assert s.log_q_own.shape == (300, 3) and s.path == "direct"
    assert torch.allclose(mi + mk, kl, rtol=0, atol=1e-9)
    tc = s.log_q_agg - s.log_q_dims.sum(-1)
    dw = (s.log_q_dims - s.log_p_dims).sum(-1)
    assert (tc + dw - mk).abs().max() < 1e-5  # log p(z) (joint, float32) vs sum_j log p(z_j)
    assert float(mi.max()) <= math.log(300) + 1e-6
    part = summarize_information(s)
    assert abs(part["mutual_information"]["mean"] + part["marginal_kl"]["mean"] - part["kl"]["mean"]) < 1e-9
    assert abs(part["total_correlation"]["mean"] + part["dimensionwise_kl"]["mean"]
               - part["marginal_kl"]["mean"]) < 1e-5
    assert abs(sum(part["dimensionwise_kl_per_dim"]) - part["dimensionwise_kl"]["mean"]) < 1e-9
    assert part["max_mutual_information"] == pytest.approx(math.log(300))


def test_each_term_matches_its_closed_form_on_a_linear_gaussian_encoder():
    """N = 2000 points, z in R^2, K = 2 draws per point. The estimator's target is the mixture of the N Gaussians
    q(z|x_n), which tends to the Gaussian aggregate of the closed forms (built from the points' own mean and covariance,
    so the data's sampling noise in the moments cancels). Its finite-N bias: the own component adds q(z|x_n)/N to
    the mixture, lowering I_q by about (E[q(z|x)/q(z)] - 1)/N, and the log of a noisy mixture raises it by about as
    much (Jensen); over 12 seeds the mean error of I_q was +0.004 nats (about -0.03 at N = 500), a fifth of a
    standard error. So each term must lie within 3 standard errors (reported, over points) + 0.01 of its closed
    form; over those 12 seeds the largest error used half of that tolerance."""
    model, guide, x = linear_encoder(2000)
    pyro.set_rng_seed(1)
    part = summarize_information(information_samples(model, guide, x, num_samples=2, batch_size=500))
    exact = closed_forms(x)
    assert exact["total_correlation"] > 0.2 and exact["mutual_information"] > 1.0  # all terms far from 0
    for key, value in exact.items():
        est = part[key]
        assert abs(est["mean"] - value) < 3 * est["se"] + 0.01, (key, est, value)
        assert est["se"] < 0.05, (key, est)


def test_a_point_mass_like_encoder_saturates_at_log_n():
    """With s -> 0 every draw is explained by its own component alone: I_q = log N (the bound is attained)."""
    model, guide, x = linear_encoder(200, scale=torch.tensor([1e-4, 1e-4]))
    part = summarize_information(information_samples(model, guide, x, num_samples=2))
    assert part["mutual_information"]["mean"] == pytest.approx(math.log(200), abs=1e-3)


def test_the_conditioned_path_equals_the_direct_one():
    """q(z|x_m) by the guide conditioned on the draws under a plate (any number of sites) equals the direct
    evaluation of the site's distribution, on the same draws; chunking changes nothing."""
    model, guide, x = linear_encoder(120)
    pyro.set_rng_seed(3)
    direct = information_samples(model, guide, x, num_samples=2, batch_size=50, budget=400, path="direct")
    pyro.set_rng_seed(3)
    conditioned = information_samples(model, guide, x, num_samples=2, batch_size=50, path="conditioned")
    assert torch.equal(direct.log_q_own, conditioned.log_q_own)
    assert torch.allclose(direct.log_q_agg, conditioned.log_q_agg, rtol=0, atol=1e-5)
    assert torch.allclose(direct.log_q_dims, conditioned.log_q_dims, rtol=0, atol=1e-5)


def test_a_hierarchy_concatenates_its_latents_and_says_why_tc_is_absent():
    from zoo.hvae import HVAE

    pyro.set_rng_seed(0)
    model = HVAE(5, latent_dim=2, latent_dim1=3, hidden=(8,), likelihood="gaussian", sigma=0.5)
    guide = build_guide("diagonal", model)
    x = torch.randn(60, 5)
    part, reason = evaluate_information(model, guide, x, num_samples=2)
    assert reason is None and part["path"] == "conditioned" and part["points"] == 60
    assert part["total_correlation"] is None and "z2, z1" in part["dimensionwise_reason"]
    assert abs(part["mutual_information"]["mean"] + part["marginal_kl"]["mean"] - part["kl"]["mean"]) < 1e-9
    assert 0 <= part["mutual_information"]["mean"] <= math.log(60)


def test_an_invertible_flow_guide_gets_iq_and_marginal_kl_only():
    model = VAE(5, latent_dim=2, hidden=(8,), likelihood="gaussian", sigma=0.5)
    guide = build_guide("householder:2", model)
    part, reason = evaluate_information(model, guide, torch.randn(40, 5), num_samples=2)
    assert reason is None and part["total_correlation"] is None and part["dimensionwise_kl"] is None
    assert "per-dimension marginals" in part["dimensionwise_reason"]
    assert abs(part["mutual_information"]["mean"] + part["marginal_kl"]["mean"] - part["kl"]["mean"]) < 1e-9
    assert "limited_to" not in part  # within the limits of a costly mixture: all 40 points, 2 draws


def test_a_costly_mixture_is_limited_and_says_so_while_a_diagonal_one_is_not():
    """A flow guide's q(z|x_m) at another point's draw runs the flow per pair (N^2 K evaluations): by default at most
    COSTLY_POINTS points and COSTLY_SAMPLES draws, recorded; a diagonal guide's mixture is elementwise: all points."""
    from inference.information import COSTLY_POINTS, COSTLY_SAMPLES

    model = VAE(5, latent_dim=2, hidden=(8,), likelihood="gaussian", sigma=0.5)
    x = torch.randn(COSTLY_POINTS + 20, 5)
    part, _ = evaluate_information(model, build_guide("householder:2", model), x, num_samples=COSTLY_SAMPLES + 1)
    assert (part["points"], part["samples_per_point"]) == (COSTLY_POINTS, COSTLY_SAMPLES)
    assert part["limited_to"].startswith(f"{COSTLY_POINTS} points x {COSTLY_SAMPLES} draws, not {len(x)} x 5")
    assert abs(part["mutual_information"]["mean"] + part["marginal_kl"]["mean"] - part["kl"]["mean"]) < 1e-9
    full, _ = evaluate_information(model, build_guide("diagonal", model), x, num_samples=COSTLY_SAMPLES + 1)
    assert (full["points"], full["samples_per_point"]) == (len(x), COSTLY_SAMPLES + 1) and "limited_to" not in full


@pytest.mark.parametrize("case", ["m2", "svae", "planar", "vamp"])
def test_models_outside_its_scope_get_a_reason_not_numbers(case):
    import guides.semi_supervised  # noqa: F401  (registers semi-supervised)
    import guides.von_mises_fisher  # noqa: F401  (registers vmf)
    from zoo.m2 import M2
    from zoo.svae import SVAE

    x = torch.rand(10, 6)
    if case == "m2":
        model = M2(6, num_classes=3, latent_dim=2, hidden=(8,))
        guide = build_guide("semi-supervised", model)
    elif case == "svae":
        model = SVAE(6, latent_dim=3, hidden=(8,))
        guide = build_guide("vmf", model)
    elif case == "planar":
        model = VAE(6, latent_dim=2, hidden=(8,))
        guide = build_guide("planar:2", model)
    else:  # a prior that does not factorise: I_q and marginal KL, no TC
        model = VAE(6, latent_dim=2, hidden=(8,), prior="vamp:3")
        guide = build_guide("diagonal", model)
    part, reason = evaluate_information(model, guide, x, num_samples=1)
    expected = {"m2": "discrete latent 'y'", "svae": "sphere", "planar": "cannot evaluate q(z|x)",
                "vamp": None}[case]
    if expected is None:
        assert part["total_correlation"] is None and "p(z) = prod_j p(z_j)" in part["dimensionwise_reason"]
        assert part["marginal_kl"]["mean"] > -1e-6 or part["marginal_kl"]["se"] > 0
    else:
        assert part is None and expected in reason and "\n" not in reason


def test_bad_arguments_are_one_line_config_errors():
    model, guide, x = linear_encoder(5)
    for kwargs in ({"num_samples": 0}, {"max_points": 1}):
        with pytest.raises(ConfigError) as e:
            evaluate_information(model, guide, x, **kwargs)
        assert "\n" not in str(e.value)
    assert information_reason(model, guide, x[:1]).startswith("the aggregate posterior needs at least 2")


def test_the_report_table_shows_the_numbers_or_the_reason():
    from types import SimpleNamespace

    from reports.information_table import information_table

    model, guide, x = linear_encoder(50)
    part, _ = evaluate_information(model, guide, x, num_samples=1)
    config = {"model": {"name": "vae"}, "guide": "diagonal", "objective": "elbo", "train": {"beta": 4.0}}
    runs = [SimpleNamespace(name="a", config=config, summary={"information": part}),
            SimpleNamespace(name="b", config=config, summary={"information_reason": "discrete latent 'y': ..."}),
            SimpleNamespace(name="c", config=config, summary={})]
    table = information_table(runs)
    assert list(table["run"]) == ["a", "b", "c"] and table["objective"][0] == "elbo (beta=4)"
    mi = part["mutual_information"]
    assert table["I_q(x;z)"][0] == f"{mi['mean']:.3f} ± {mi['se']:.3f}" and table["N × K"][0] == "50 × 1"
    assert table["I_q(x;z)"][1] == "none: discrete latent 'y': ..." and table["I_q(x;z)"][2].startswith("none: not")
    assert information_table(runs[2:]).empty
