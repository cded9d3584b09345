"""Sequences (issue 14): the Kalman filter against the brute-force Gaussian marginal, the lgssm Pyro program and the
importance sampler against the Kalman filter, masks (variable-length batches equal one sequence at a time, padding
changes nothing), vrnn's log-weight against a hand-written per-step sum, training, resume, evaluation, bad input."""
import json
import math
import os

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch import nn

from guides.base import build_guide
from guides.sequences import FilteringGuide, SmoothingGuide, VRNNGuide  # noqa: F401  (registers the guides)
from inference.evaluation import importance_sample
from inference.importance import scaled_log_prob, sum_to_points
from inference.objectives import build_objective
from zoo.data.sequences import lgssm_parameters, sequence_split, simulate_lgssm
from zoo.kalman import brute_force_log_likelihood, kalman_log_likelihood, posterior_moments
from zoo.lgssm import LGSSM
from zoo.model import data_plate
from zoo.vrnn import VRNN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _no_validation():
    pyro.enable_validation(False)
    yield


def _spd(n, g):
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(n, dtype=torch.float64)


def _true_lgssm(T=20, dtype=torch.float64):
    p = lgssm_parameters()
    return LGSSM(T * 2, (T, 2), latent_dim=2).to(dtype).set_parameters(p["A"], p["C"], p["b"], p["q0"], p["q"],
                                                                      p["r"])


def _padded(x3: torch.Tensor, lengths) -> torch.Tensor:
    """Sequences (N, T, D) flattened with NaN beyond each length (the data contract)."""
    return sequence_split(x3, torch.as_tensor(lengths)).x.to(x3.dtype) if x3.dtype == torch.float32 else \
        _pad64(x3, lengths)


def _pad64(x3, lengths):
    T = x3.shape[1]
    valid = torch.arange(T).unsqueeze(0) < torch.as_tensor(lengths).unsqueeze(1)
    return torch.where(valid.unsqueeze(-1), x3, torch.full((), float("nan"), dtype=x3.dtype)).reshape(len(x3), -1)


# ------------------------------------------------------------------------------------------- Kalman filter
def test_kalman_filter_equals_the_brute_force_gaussian_marginal():
    """x_1..x_L is jointly Gaussian: N(1 (x) b, H Cov(z) H^T + I (x) R); the filter's prediction-error decomposition
    must give its log-density exactly, for full covariances and for every prefix (masks)."""
    g = torch.Generator().manual_seed(0)
    dz, D, T, n = 3, 2, 7, 5
    A = 0.5 * torch.randn(dz, dz, generator=g, dtype=torch.float64)
    C = torch.randn(D, dz, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    Q, R, Q0 = _spd(dz, g), _spd(D, g), _spd(dz, g)
    x = torch.randn(n, T, D, generator=g, dtype=torch.float64) * 2
    lengths = torch.tensor([7, 1, 4, 6, 3])
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    x_nan = torch.where(mask.unsqueeze(-1), x, torch.full((), float("nan"), dtype=x.dtype))
    kalman = kalman_log_likelihood(x_nan, mask, A, C, b, Q, R, Q0)
    brute = torch.stack([brute_force_log_likelihood(x[i, :lengths[i]], A, C, b, Q, R, Q0) for i in range(n)])
    torch.testing.assert_close(kalman, brute, rtol=0, atol=1e-9)
    # a mask with holes (steps not observed inside a sequence) is the marginal of the observed steps
    holes = torch.tensor([True, False, True, True, False, False, True])
    torch.testing.assert_close(kalman_log_likelihood(x[:1], holes.unsqueeze(0), A, C, b, Q, R, Q0)[0],
                               brute_force_log_likelihood(x[0], A, C, b, Q, R, Q0, observed=holes), rtol=0,
                               atol=1e-9)
    assert not torch.allclose(kalman[0], kalman_log_likelihood(x[:1] + 0.1, mask[:1], A, C, b, Q, R, Q0)[0])


# ------------------------------------------------------------------------------------------- lgssm vs Kalman
class ExactPosteriorGuide(nn.Module):
    """q(z_1..z_T | x) = p(z_1..z_T | the observed steps of x) of an LGSSM, factorised forwards in time:
    q(z_t | z_<t) from the Cholesky factor of the joint posterior covariance. With it every log-weight of the model's
    Pyro program is exactly log p(x), the Kalman filter's value. ``widen`` c > 1 multiplies the posterior covariance
    by c: a guide with a known, non-zero KL to the posterior (an ELBO strictly below log p(x))."""

    def __init__(self, model, widen: float = 1.0):
        super().__init__()
        self.__dict__["model"] = model
        self.widen = widen

    def forward(self, x, y=None):
        m = self.model
        xs, mask = m.split(x)
        B, T, _ = xs.shape
        k = m.latent_dim
        p = {n: v.detach().double() for n, v in m.named_parameters()}
        args = (p["A"], p["C"], p["b"], torch.diag(p["log_q"].exp()), torch.diag(p["log_r"].exp()),
                torch.diag(p["log_q0"].exp()))
        means, chols = [], []
        for i in range(B):
            mu, cov = posterior_moments(xs[i].double(), *args, observed=mask[i].tolist())
            means.append(mu)
            chols.append(torch.linalg.cholesky(cov) * math.sqrt(self.widen))
        mu, L = torch.stack(means).to(x.dtype), torch.stack(chols).to(x.dtype)
        eps = []
        with data_plate(x):
            for t in range(T):
                sl = slice(t * k, (t + 1) * k)
                loc = mu[:, sl]
                if eps:
                    loc = loc + (L[:, sl, :t * k] @ torch.cat(eps, -1).unsqueeze(-1)).squeeze(-1)
                with poutine.mask(mask=mask[:, t]):
                    z = pyro.sample(m.site_name(t), dist.MultivariateNormal(loc, scale_tril=L[:, sl, sl]))
                eps.append(torch.linalg.solve_triangular(L[:, sl, sl], (z - loc).unsqueeze(-1), upper=False)
                           .squeeze(-1))


def test_every_log_weight_of_the_lgssm_program_is_the_kalman_log_likelihood_under_the_exact_posterior():
    """Variable lengths in one batch (padding never scored): with q = the exact posterior, log p(x, z) - log q(z | x)
    is log p(x) for every draw; the zoo's vectorised weights (particles left of the data plate) give the Kalman
    filter's value per sequence."""
    from inference.importance import weight_terms

    model = _true_lgssm()
    x3 = simulate_lgssm(6, 20, torch.Generator().manual_seed(1))
    x = _pad64(x3, [20, 1, 7, 13, 20, 2])
    exact = model.exact_log_likelihood(x)
    torch.manual_seed(0)
    terms = weight_terms(model, ExactPosteriorGuide(model), x, num_particles=4, max_plate_nesting=1)
    assert terms.log_w.shape == (4, 6)
    torch.testing.assert_close(terms.log_w, exact.expand(4, 6), rtol=0, atol=1e-8)
    assert (terms.log_q != 0).all()  # the latents were drawn and scored


@pytest.fixture(scope="module")
def lgssm_test_sequences():
    x3 = simulate_lgssm(40, 20, torch.Generator().manual_seed(2)).float()
    return _padded(x3, [20] * 30 + torch.randint(1, 21, (10,), generator=torch.Generator().manual_seed(3)).tolist())


def test_lgssm_importance_sampled_estimate_matches_the_kalman_filter(lgssm_test_sequences):
    """The protocol's estimator (chunked, float32) at the generating parameters, with an analytic guide: the exact
    posterior with its covariance widened 1.2 times (KL to the posterior ~0.3 nats a sequence), on 30 full and 10
    shorter sequences in one batch: within 0.05 nats per sequence of the Kalman filter's exact log p(x_<=T) on
    average, and the ELBO below it. K = 1000 here for time (measured: 0.010 nats at K = 5000 on 60 sequences, the
    issue's K; the tolerance holds at 1000 too). (A briefly trained neural guide is not good enough for 0.05 in a test's budget:
    ``smoothing`` after 400 steps is 2.3 nats below in ELBO and 0.27 off at K=5000.)"""
    model = _true_lgssm(dtype=torch.float32)
    x = lgssm_test_sequences
    exact = model.exact_log_likelihood(x)
    torch.manual_seed(4)
    est = importance_sample(model, ExactPosteriorGuide(model, widen=1.2), x, num_samples=1000, batch_size=40)
    log_px, elbo = torch.as_tensor(est["log_px"]), torch.as_tensor(est["elbo"])
    gap = (log_px - exact).abs().mean().item()
    print(f"K=1000: mean |log p_hat - log p| = {gap:.4f} nats, ELBO {(exact - elbo).mean():.3f} below")
    assert gap < 0.05, gap
    assert elbo.mean() < exact.mean() - 0.1  # a real bound, strictly below
    assert (elbo <= exact + 1e-3).all()


# ------------------------------------------------------------------------------------------- masks
def _log_w_given(model, guide, x, values):
    """(B,) log p(x, z) - log q(z | x) at the latent values ``values`` (the guide conditioned on them), every site
    scored with its scale and mask as the zoo's estimators do (inference/importance.py)."""
    guide_trace = poutine.trace(poutine.condition(guide, data=values)).get_trace(x)
    model_trace = poutine.trace(poutine.condition(model, data=values)).get_trace(x)
    shape = (x.shape[0],)

    def total(trace, keep):
        return sum(sum_to_points(scaled_log_prob(s), shape) for n, s in trace.nodes.items()
                   if s["type"] == "sample" and keep(n) and not n.startswith("_") and n != "data")

    return total(model_trace, lambda n: True) - total(guide_trace, lambda n: n.startswith("z_"))


def _pairs(T, D):
    lgssm = LGSSM(T * D, (T, D), latent_dim=2, hidden=(8,)).double()
    vrnn = VRNN(T * D, (T, D), latent_dim=3, hidden=(8,), likelihood="gaussian").double()
    return [(lgssm, "filtering"), (lgssm, "smoothing"), (vrnn, "vrnn"), (vrnn, "smoothing"), (vrnn, "filtering")]


@pytest.mark.parametrize("pair", range(5), ids=["lgssm-filtering", "lgssm-smoothing", "vrnn-vrnn", "vrnn-smoothing",
                                                "vrnn-filtering"])
def test_a_variable_length_batch_scores_each_sequence_as_it_scores_it_alone(pair):
    """Exact: the log-weight of each sequence of a padded batch (same latent values) equals that of the sequence on
    its own, cut to its length (fewer steps, fewer sites, no padding at all)."""
    torch.manual_seed(0)
    T, D = 6, 2
    model, name = _pairs(T, D)[pair]
    guide = build_guide(name, model).double()
    x3 = torch.randn(5, T, D, dtype=torch.float64)
    lengths = [6, 1, 3, 5, 2]
    x = _pad64(x3, lengths)
    values = {n: s["value"] for n, s in poutine.trace(guide).get_trace(x).nodes.items() if n.startswith("z_")}
    batch = _log_w_given(model, guide, x, values)
    assert torch.isfinite(batch).all()
    for i, L in enumerate(lengths):
        alone = _log_w_given(model, guide, x3[i:i + 1, :L].reshape(1, -1),
                             {model.site_name(t): values[model.site_name(t)][i:i + 1] for t in range(L)})
        torch.testing.assert_close(batch[i:i + 1], alone, rtol=0, atol=1e-10)
    # the masked steps' latents count nowhere: other values there change nothing
    moved = {n: v + 5.0 for n, v in values.items()}
    moved.update({model.site_name(t): values[model.site_name(t)] for t in range(1)})
    torch.testing.assert_close(_log_w_given(model, guide, x, moved)[1], batch[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("guide_name", ["filtering", "diagonal", "iaf:2"])
@pytest.mark.parametrize("objective", ["elbo", "iwae:3"])
def test_padding_changes_nothing(guide_name, objective):
    """Other padding values (NaN, +-inf) give the same loss and the same finite gradients under the same seed; padding
    to a longer T (more steps of padding) gives the same per-sequence log-weights."""
    T, D = 5, 2
    model = VRNN(T * D, (T, D), latent_dim=2, hidden=(8,), likelihood="gaussian").double()
    guide = build_guide(guide_name, model).double()
    x3 = torch.randn(4, T, D, dtype=torch.float64)
    x = _pad64(x3, [5, 2, 4, 1])
    other = x.clone()
    pad = torch.isnan(other)
    other[pad] = torch.where(torch.arange(int(pad.sum())) % 2 == 0, float("inf"), float("-inf")).double()
    losses, grads = [], []
    for data in (x, other):
        model.zero_grad(), guide.zero_grad()
        torch.manual_seed(1)
        loss = build_objective(objective).loss(model, guide, data)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in list(model.parameters()) + list(guide.parameters()) if p.grad is not None])
    assert torch.isfinite(losses[0]) and losses[0] == losses[1]
    assert all(torch.isfinite(g).all() for g in grads[0])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    if guide_name == "filtering":  # T-agnostic guides: three more steps of padding
        longer = torch.cat([x, torch.full((4, 3 * D), float("nan"), dtype=x.dtype)], dim=1)
        values = {n: s["value"] for n, s in poutine.trace(guide).get_trace(longer).nodes.items() if n.startswith("z_")}
        short = {n: v for n, v in values.items() if int(n[2:]) <= T}
        torch.testing.assert_close(_log_w_given(model, guide, longer, values), _log_w_given(model, guide, x, short),
                                   rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------- vrnn
def test_vrnn_log_weight_is_the_hand_written_per_step_sum():
    """log p(x, z) - log q(z | x) of vrnn with its paper's guide equals the sum over each sequence's own steps of
    log N(z_t; prior(h_{t-1})) + log Bern(x_t; emission(phi_z(z_t), h_{t-1})) - log N(z_t; enc(phi_x(x_t), h_{t-1})),
    h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1}), written out here without Pyro."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    T, D = 4, 3
    model = VRNN(T * D, (T, D), latent_dim=2, hidden=(5,)).double()
    guide = build_guide("vrnn", model).double()
    x3 = torch.bernoulli(torch.full((3, T, D), 0.5, dtype=torch.float64))
    lengths = torch.tensor([4, 2, 1])
    x = _pad64(x3, lengths.tolist())
    values = {n: s["value"] for n, s in poutine.trace(guide).get_trace(x).nodes.items() if n.startswith("z_")}

    def gauss(out):
        loc, raw = out.chunk(2, -1)
        return torch.distributions.Normal(loc, F.softplus(raw) + 1e-3)

    h = torch.zeros(3, 5, dtype=torch.float64)
    expected = torch.zeros(3, dtype=torch.float64)
    for t in range(T):
        z, xt = values[f"z_{t + 1}"], x3[:, t]
        fx, fz = model.phi_x(xt), model.phi_z(z)
        log_prior = gauss(model.prior_net(h)).log_prob(z).sum(-1)
        log_q = gauss(guide.encoder(torch.cat([fx, h], -1))).log_prob(z).sum(-1)
        logits = model.emission(torch.cat([fz, h], -1))
        log_x = (xt * logits - F.softplus(logits)).sum(-1)
        expected = expected + torch.where(t < lengths, log_prior + log_x - log_q, torch.zeros(()).double())
        h = model.rnn(torch.cat([fx, fz], -1), h)
    torch.testing.assert_close(_log_w_given(model, guide, x, values), expected, rtol=0, atol=1e-10)


def test_vrnn_trains_on_mnist5k_rows():
    """A few Adam steps of the -ELBO on mnist5k-rows: finite and decreasing (held-out batch before and after)."""
    from zoo.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("mnist5k-rows", binarize="static")
    assert data.sequence_shape == (28, 28) and data.train.x.shape[1] == 784 and (data.train.lengths == 28).all()
    model = VRNN(784, (28, 28), latent_dim=4, hidden=(16,))
    guide = build_guide("vrnn", model)
    objective = build_objective("elbo")
    params = list(model.parameters()) + list(guide.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    held = data.valid.x[:32]
    with torch.no_grad():
        before = objective.loss(model, guide, held).item() / 32
    for step in range(8):
        xb = data.train.x[step * 32:(step + 1) * 32]
        loss = objective.loss(model, guide, xb) / 32
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = objective.loss(model, guide, held).item() / 32
    assert math.isfinite(after) and after < before - 20, (before, after)
    samples = model.sample(3, held)
    assert samples.shape == (3, 784) and ((samples >= 0) & (samples <= 1)).all()


# ------------------------------------------------------------------------------------------- runs: resume, evaluate
def _vrnn_config(epochs=2, **train):
    from inference.training import TrainConfig
    from zoo.cli.runs import make_config

    cfg = TrainConfig(epochs=epochs, batch_size=250, lr=3e-3, seed=7, progress=False, validate=True, **train)
    return make_config("vrnn", "vrnn", "elbo", "lgssm-synthetic", "none",
                       {"latent_dim": 2, "hidden": [8], "likelihood": "gaussian"}, cfg, device="cpu")


def test_resume_of_a_vrnn_run_after_a_crash_mid_epoch_gives_the_same_parameters(tmp_path,
                                                                                 killed_run_resumes_bit_for_bit):
    # 2000 sequences / 250 = 8 steps an epoch: killed mid second epoch (step 11), last checkpoint at step 10
    *_, a, b = killed_run_resumes_bit_for_bit(lambda: _vrnn_config(checkpoint_every=5), tmp_path, crash_step=11, parts=("model", "guide"),
                                              optimizers=("optimizer",), metrics=("train_loss", "valid_loss"),
                                              saved_step=10)
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 16


def _npz(tmp_path, name="seq.npz", n=40, T=6, D=2, lengths=None, **extra):
    x = np.random.default_rng(0).normal(size=(n, T, D)).astype(np.float32)
    lengths = np.random.default_rng(1).integers(1, T + 1, size=n) if lengths is None else lengths
    path = str(tmp_path / name)
    np.savez(path, x=x, lengths=lengths, **extra)
    return path, x, lengths


def test_npz_sequences_with_lengths_train_and_evaluate_per_sequence_and_per_step(tmp_path, capsys):
    """zoo train / zoo evaluate on a user's variable-length sequences: eval.json gives log p(x_<=L) per sequence and per
    step, and lgssm's exact Kalman NLL beside the estimate."""
    from zoo.cli.main import main
    from zoo.data import load_dataset

    path, x, lengths = _npz(tmp_path)
    data = load_dataset(path)
    assert data.sequence_shape == (6, 2)
    for split in (data.train, data.valid, data.test):
        assert torch.equal(torch.isfinite(split.x.reshape(len(split), 6, 2)).all(-1).sum(-1), split.lengths)
    run = str(tmp_path / "run")
    assert main(["train", "--model", "lgssm", "--data", path, "--epochs", "2", "--batch-size", "16", "--no-progress",
                 "--out", run]) == 0
    assert main(["evaluate", run, "--samples", "200", "--quality-samples", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "NLL per step" in out and "NLL (exact)" in out
    summary = json.load(open(os.path.join(run, "eval.json")))
    steps = data.test.lengths.double().mean().item()
    assert summary["protocol"]["sequences"]["mean_length"] == pytest.approx(steps)
    assert summary["nll_per_step"]["mean"] < summary["nll"]["mean"]
    assert abs(summary["nll"]["mean"] - summary["exact_nll"]["mean"]) < 1.0  # a 2-epoch guide, K = 200
    assert summary["neg_elbo"]["mean"] >= summary["exact_nll"]["mean"] - 0.05


def test_bad_sequence_input_is_one_line(tmp_path, capsys, one_line_error):
    from zoo.cli.main import main

    fast = ["--epochs", "1", "--no-progress", "--latent-dim", "2", "--hidden", "8"]

    def run(*argv):
        code = main(["train", *argv, *fast, "--out", str(tmp_path / "run"), "--overwrite"])
        return code, capsys.readouterr().err

    path, _, _ = _npz(tmp_path, "zero.npz", lengths=np.array([0] + [3] * 39))
    one_line_error(*run("--model", "lgssm", "--data", path), "length 0")
    path, _, _ = _npz(tmp_path, "short.npz", lengths=np.array([3] * 39))
    one_line_error(*run("--model", "lgssm", "--data", path), "'lengths' has shape (39,) for 40 sequences")
    path, _, _ = _npz(tmp_path, "long.npz", lengths=np.array([7] * 40))
    one_line_error(*run("--model", "lgssm", "--data", path), "at most T = 6")
    one_line_error(*run("--model", "vrnn", "--data", "digits"), "model vrnn is for sequences")
    one_line_error(*run("--model", "vae", "--data", "lgssm-synthetic"), "holds sequences", "reads flat vectors")
    one_line_error(*run("--model", "vae", "--guide", "filtering", "--data", "digits"), "is for sequence models")
    x2 = str(tmp_path / "flat.npz")
    np.savez(x2, x=np.zeros((10, 4), np.float32), lengths=np.ones(10))
    one_line_error(*run("--model", "lgssm", "--data", x2), "sequences of shape (N, T, D)")
