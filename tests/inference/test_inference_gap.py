"""The inference gap split (Cremer, Li & Duvenaud 2018) against exact values: in a linear-Gaussian VAE,

    x = W z + b + s eps,  z ~ N(0, I):   log p(x) = log N(x; b, W W^T + S),   p(z | x) = N(m(x), Lambda^-1),
    Lambda = I + W^T S^-1 W,   S = diag(s^2),

so a full-covariance local q reaches the posterior (approximation gap 0), and the best diagonal Gaussian in
KL(q || p) keeps the mean and takes the variances 1 / Lambda_jj, leaving the approximation gap

    KL(q* || p(z|x)) = 1/2 [tr(Lambda Sigma_q) - d - log det(Lambda Sigma_q)]
                     = 1/2 (sum_j log Lambda_jj - log det Lambda)

(tr(Lambda Sigma_q) = d; the same for every x)."""
import json
import os

import numpy as np
import pyro
import pytest
import torch

import guides.deterministic  # noqa: F401  (registers the guide)
import guides.implicit  # noqa: F401
from guides.base import build_guide
from inference.evaluation import importance_sample
from inference.inference_gap import check_supported, evaluate_inference_gap, local_elbos, split_gap
from zoo.errors import ConfigError
from zoo.vae import VAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIGMA = 0.5
W = [[1.0, 0.8], [0.9, 1.0], [0.5, 0.4], [-0.3, -0.2], [0.2, 0.3]]  # columns alike: a strongly correlated posterior


@pytest.fixture(scope="module")
def linear_gaussian():
    """The model with fixed weights, an untrained diagonal guide (far from the posterior: a large amortization gap),
    4 points simulated from the model, their exact log p(x) and the exact posterior precision."""
    pyro.set_rng_seed(0)
    model = VAE(5, latent_dim=2, hidden=(), likelihood="gaussian", sigma=SIGMA)
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.tensor(W))
    guide = build_guide("diagonal", model)
    model.eval(), guide.eval()
    w, b = model.decoder[0].weight.detach().double(), model.decoder[0].bias.detach().double()
    noise = model.likelihood.log_sigma.detach().double().exp() ** 2
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 2, generator=g, dtype=torch.float64) @ w.T + b
         + noise.sqrt() * torch.randn(4, 5, generator=g, dtype=torch.float64)).float()
    marginal = torch.distributions.MultivariateNormal(b, covariance_matrix=w @ w.T + torch.diag(noise))
    log_px = marginal.log_prob(x.double())
    precision = torch.eye(2, dtype=torch.float64) + w.T @ torch.diag(1 / noise) @ w
    return model, guide, x, log_px.numpy(), precision


def test_a_full_covariance_local_q_closes_the_approximation_gap(linear_gaussian):
    model, guide, x, log_px, _ = linear_gaussian
    pyro.set_rng_seed(0)
    out = local_elbos(model, guide, x, family="full-covariance", steps=200, lr=0.05, eval_particles=2000)
    gap = log_px - out["elbo_local"]
    assert np.abs(gap).max() < 0.005, gap  # the exact posterior is in the family (path gradient: it lands there)
    assert (log_px - out["elbo_initial"]).min() > 1.0  # it started far away (moments of the untrained guide)
    assert not out["reset"].any()


def test_a_diagonal_local_q_leaves_the_closed_form_gap(linear_gaussian):
    model, guide, x, log_px, precision = linear_gaussian
    closed_form = float(0.5 * (precision.diagonal().log().sum() - torch.logdet(precision)))
    assert closed_form > 0.5  # a correlated posterior: the diagonal family cannot reach it
    pyro.set_rng_seed(0)
    out = local_elbos(model, guide, x, family="guide", steps=300, lr=0.05, eval_particles=10000)
    gap = log_px - out["elbo_local"]
    assert abs(gap.mean() - closed_form) < 0.02, (gap, closed_form)
    assert np.abs(gap - closed_form).max() < 0.04, (gap, closed_form)


def test_the_split_adds_up_and_the_amortization_gap_is_what_the_fit_gained(linear_gaussian):
    model, guide, x, log_px, precision = linear_gaussian
    pyro.set_rng_seed(0)
    amortized = importance_sample(model, guide, x, num_samples=2000)["elbo"]
    part, per_point = evaluate_inference_gap(model, guide, x, None, log_px, amortized, points=3, steps=50, lr=0.05,
                                             eval_particles=2000, log_px_estimator="exact")
    assert part["points"] == 3 and part["family"] == "guide" and part["steps"] == 50 and part["points_reset"] == 0
    assert part["gradient"].startswith("path derivative")
    approximation, amortization = per_point["inference_gap_approximation"], per_point["inference_gap_amortization"]
    assert approximation.shape == amortization.shape == (3,)
    np.testing.assert_allclose(approximation + amortization, log_px[:3] - amortized[:3], rtol=0, atol=1e-9)
    np.testing.assert_allclose(amortization, per_point["inference_gap_elbo_local"] - amortized[:3], atol=1e-12)
    assert part["amortization_gap"]["mean"] > 1.0  # an untrained encoder: the fit gains nats at every point
    assert (amortization > 0).all()
    for key in ("log_px", "elbo_local", "elbo_amortized", "approximation_gap", "amortization_gap", "elbo_initial"):
        assert set(part[key]) == {"mean", "se"}, key
    assert part["log_px"]["mean"] == pytest.approx(float(log_px[:3].mean()), abs=1e-9)
    assert part["elbo_amortized"]["mean"] == pytest.approx(float(amortized[:3].mean()), abs=1e-9)


def test_no_steps_means_no_amortization_gap_within_monte_carlo_error(linear_gaussian):
    """With no step the local q is the amortized q: the fit's ELBO estimate and the evaluation's agree within the
    Monte Carlo error of two K-draw means of log w (its spread measured here)."""
    from inference.importance import weight_terms

    model, guide, x, log_px, _ = linear_gaussian
    pyro.set_rng_seed(0)
    K = 4000
    amortized = importance_sample(model, guide, x, num_samples=K)["elbo"]
    _, per_point = evaluate_inference_gap(model, guide, x, None, log_px, amortized, points=4, steps=0,
                                          eval_particles=K)
    with torch.no_grad():
        sd = weight_terms(model, guide, x, None, 2000).log_w.double().std(0).numpy()
    se = sd * np.sqrt(2.0 / K)  # of the difference of two independent estimates
    gap = per_point["inference_gap_amortization"]
    assert (np.abs(gap) < 4 * se).all(), (gap, se)
    assert (per_point["inference_gap_elbo_local"] == per_point["inference_gap_elbo_local"]).all()


def test_a_log_px_below_the_fitted_elbo_is_flagged(linear_gaussian):
    """An ELBO is a lower bound: where ELBO(q*) exceeds the log p(x) estimate, the estimate is too low and says so."""
    model, guide, x, log_px, _ = linear_gaussian
    amortized = log_px - 5.0
    part, _ = evaluate_inference_gap(model, guide, x, None, log_px, amortized, points=4, steps=0, eval_particles=100)
    assert part["points_log_px_below_elbo_local"] == 0 and "note" not in part
    part, _ = evaluate_inference_gap(model, guide, x, None, log_px - 100.0, amortized, points=4, steps=0,
                                     eval_particles=100)
    assert part["points_log_px_below_elbo_local"] == 4 and "at 4 of 4 points" in part["note"]


def test_a_flow_guide_frees_every_flow_step_and_gains_on_its_start(linear_gaussian):
    model, _, x, log_px, _ = linear_gaussian
    for spec, step_name in (("planar:2", "z planar step 2"), ("iaf:1", "z iaf step 1 (first MADE layer)")):
        pyro.set_rng_seed(0)
        guide = build_guide(spec, model)
        heads = check_supported(model, guide)
        assert "z (loc, scale)" in heads and step_name in heads, list(heads)
        out = local_elbos(model, guide, x[:2], steps=40, lr=0.05, eval_particles=500)
        assert out["gradient"].startswith("reparameterisation gradient")  # a flow's path derivative needs a Jacobian
        assert (out["elbo_local"] > out["elbo_initial"] + 0.5).all(), (spec, out)
        assert (out["elbo_local"] < log_px[:2] + 0.05).all(), (spec, out)  # still a lower bound
        for p in guide.parameters():  # nothing of the guide was trained or given a gradient
            assert p.grad is None


def test_the_hooks_are_removed_after_the_fit(linear_gaussian):
    model, guide, x, _, _ = linear_gaussian
    before = [p.detach().clone() for p in guide.parameters()]
    local_elbos(model, guide, x[:2], steps=5, eval_particles=10)
    assert all(not m._forward_hooks for m in guide.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, guide.parameters()))


def test_split_gap_against_hand_values():
    out = split_gap([-10.0, -12.0], [-11.0, -12.5], [-13.0, -15.5])
    np.testing.assert_allclose(out["per_point"]["approximation_gap"], [1.0, 0.5])
    np.testing.assert_allclose(out["per_point"]["amortization_gap"], [2.0, 3.0])
    assert out["approximation_gap"] == {"mean": 0.75, "se": pytest.approx(0.25)}
    assert out["amortization_gap"]["mean"] == 2.5


def _guide_function(x, y=None):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", pyro.distributions.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))


@pytest.mark.parametrize("make, family, fragment", [
    (lambda m: build_guide(_guide_function, m), "guide", "does not say which of its outputs"),
    (lambda m: build_guide("implicit", m), "guide", "is implicit"),
    (lambda m: build_guide("deterministic", m), "full-covariance", "is implicit"),
    (lambda m: build_guide("diagonal", m), "full", "unknown inference-gap family 'full'"),
])
def test_unsupported_guides_are_refused_in_one_line(linear_gaussian, make, family, fragment):
    model, _, x, log_px, _ = linear_gaussian
    with pytest.raises(ConfigError) as e:
        local_elbos(model, make(model), x, family=family, steps=1)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("options, fragment", [({"steps": -1}, "steps must be a non-negative integer"),
                                               ({"particles": 0}, "particles must be a positive integer"),
                                               ({"lr": float("nan")}, "learning rate")])
def test_bad_settings_are_refused_in_one_line(linear_gaussian, options, fragment):
    model, guide, x, _, _ = linear_gaussian
    with pytest.raises(ConfigError, match=fragment):
        local_elbos(model, guide, x, **options)


# ------------------------------------------------------------------------------------------------ through the CLI
FAST = ["--data", "digits", "--epochs", "1", "--batch-size", "64", "--latent-dim", "2", "--hidden", "16",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from zoo.cli.main import main

    out = str(tmp_path_factory.mktemp("runs") / "digits")
    assert main(["train", "--out", out] + FAST) == 0
    return out


@pytest.fixture(scope="module")
def gap_evaluation(digits_run):
    """`zoo evaluate --inference-gap 3` of the digits run: (run directory, exit code, stdout)."""
    import contextlib
    import io

    from zoo.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["evaluate", digits_run, "--samples", "50", "--no-progress", "--quality-samples", "0",
                     "--inference-gap", "3", "--inference-gap-steps", "20", "--device", "cpu"])
    return digits_run, code, out.getvalue()


def test_zoo_evaluate_writes_the_inference_gap(gap_evaluation):
    digits_run, code, out = gap_evaluation
    assert code == 0
    assert "approximation gap" in out and "amortization gap" in out
    ev = json.load(open(os.path.join(digits_run, "eval.json")))
    gap = ev["inference_gap"]
    assert {"points", "steps", "family", "log_px", "elbo_local", "elbo_amortized", "approximation_gap",
            "amortization_gap", "seconds"} <= set(gap)
    assert gap["points"] == 3 and gap["steps"] == 20 and gap["family"] == "guide"
    assert gap["log_px_estimator"] == "importance sampling, K = 50"
    points = torch.load(os.path.join(digits_run, "eval_points.pt"), weights_only=True)
    log_px, elbo = points["log_px"][:3].double().numpy(), points["elbo"][:3].double().numpy()
    assert gap["log_px"]["mean"] == pytest.approx(float(log_px.mean()), abs=1e-6)
    assert gap["elbo_amortized"]["mean"] == pytest.approx(float(elbo.mean()), abs=1e-6)
    assert (gap["approximation_gap"]["mean"] + gap["amortization_gap"]["mean"]
            == pytest.approx(float((log_px - elbo).mean()), abs=1e-6))
    np.testing.assert_allclose(points["inference_gap_amortization"].numpy(),
                               points["inference_gap_elbo_local"].numpy() - elbo, atol=1e-6)


def test_log_px_comes_from_ais_when_the_evaluation_runs_it(digits_run, tmp_path):
    import shutil

    from zoo.cli.runs import evaluate_run

    run = str(tmp_path / "copy")
    shutil.copytree(digits_run, run)
    ev = evaluate_run(run, 20, progress=False, quality_samples=0, ais={"steps": 3, "chains": 2, "leapfrog": 2},
                      inference_gap={"points": 2, "steps": 5, "family": "full-covariance"})
    gap = ev["inference_gap"]
    points = torch.load(os.path.join(run, "eval_points.pt"), weights_only=True)
    assert gap["log_px_estimator"].startswith("AIS, T = 3") and gap["family"] == "full-covariance"
    assert gap["log_px"]["mean"] == pytest.approx(float(points["ais_log_px"][:2].double().mean()), abs=1e-6)
    assert gap["points"] == 2 and points["inference_gap_elbo_local"].shape == (2,)


def test_zoo_evaluate_refuses_an_implicit_guide_in_one_line(tmp_path, capsys, one_line_error):
    from zoo.cli.main import main

    out = str(tmp_path / "aae")
    assert main(["train", "--out", out, "--guide", "deterministic", "--objective", "aae"] + FAST) == 0
    capsys.readouterr()
    code = main(["evaluate", out, "--samples", "5", "--no-progress", "--inference-gap", "2"])
    one_line_error(code, capsys.readouterr().err, "is implicit", "no amortized ELBO")
    assert not os.path.exists(os.path.join(out, "eval.json"))


def test_the_report_table_shows_the_split_of_each_run_that_has_it(gap_evaluation):
    from types import SimpleNamespace

    from reports.inference_gap_table import inference_gap_table

    digits_run = gap_evaluation[0]
    summary = json.load(open(os.path.join(digits_run, "eval.json")))
    config = json.load(open(os.path.join(digits_run, "config.json")))
    runs = [SimpleNamespace(name="with", summary=summary, config=config),
            SimpleNamespace(name="without", summary={k: v for k, v in summary.items() if k != "inference_gap"},
                            config=config)]
    table = inference_gap_table(runs)
    assert list(table["run"]) == ["with"] and table.loc[0, "guide"] == "diagonal"
    assert table.loc[0, "points × steps"] == "3 × 20" and table.loc[0, "local q"] == "guide"
    gap = summary["inference_gap"]["amortization_gap"]
    assert table.loc[0, "amortization gap"] == f"{gap['mean']:.2f} ± {gap['se']:.2f}"
    assert table.loc[0, "log p(x)"].endswith("(IS)")
    assert inference_gap_table(runs[1:]).empty
