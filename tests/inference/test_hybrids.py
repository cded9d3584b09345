"""Hybrids of likelihood and adversarial training: Flow-GAN (adv, hybrid:LAMBDA), VAE-GAN (elbo+gan:LAMBDA) and the
adversarial auto-encoder (aae): exact reductions at LAMBDA = 0, the latent critic matching q(z) to p(z), bit-for-bit
resume, and bad input."""
import os

import pyro
import pytest
import torch

from inference.training import TrainConfig
from zoo.cli.assemble import build_components
from zoo.cli.main import main as zoo_main
from zoo.cli.runs import make_config, train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True)


def _components(model, guide, objective, data, options, **train):
    config = make_config(model, guide, objective, data, "none" if data != "digits" or model != "vae" else "dynamic",
                         options, TrainConfig(epochs=1, **train), device="cpu")
    return build_components(config, torch.device("cpu"))


def test_flow_gan_hybrid_with_lambda_zero_gives_exactly_the_mle_gradients():
    from inference.mle import MLE

    comps = _components("realnvp", "none", "hybrid:0", "moons", {"hidden": [16], "flow_depth": 2}, critic="mlp")
    model, x = comps.model.train(), comps.data.train.x[:64]
    params = list(model.parameters())
    pyro.set_rng_seed(1)
    hybrid = _grads(comps.objective.generator_step(model, comps.guide, comps.critic, x), params)
    pyro.set_rng_seed(1)
    mle = _grads(MLE().loss(model, comps.guide, x) / x.shape[0], params)
    assert all(torch.equal(a, b) for a, b in zip(hybrid, mle))


def test_flow_gan_hybrid_adds_lambda_times_the_wasserstein_generator_loss():
    from inference.adversarial import model_samples
    from inference.mle import MLE

    comps = _components("realnvp", "none", "hybrid:2.5", "moons", {"hidden": [16], "flow_depth": 2}, critic="mlp")
    model, x = comps.model.train(), comps.data.train.x[:64]
    pyro.set_rng_seed(2)
    got = comps.objective.generator_step(model, comps.guide, comps.critic, x)
    pyro.set_rng_seed(2)
    nll = MLE().loss(model, comps.guide, x) / x.shape[0]
    want = nll + 2.5 * -comps.critic(model_samples(model, 64, x)).mean()
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert comps.objective.adversarial_weight == 2.5 and comps.objective.spec() == "hybrid:2.5"


def test_vae_gan_with_lambda_zero_gives_exactly_the_elbo_gradients():
    from inference.objectives import ELBO

    comps = _components("vae", "diagonal", "elbo+gan:0", "digits", {"latent_dim": 3, "hidden": [16]})
    x = comps.data.train.x[:32].round()
    params = list(comps.model.parameters()) + list(comps.guide.parameters())
    pyro.set_rng_seed(3)
    hybrid = _grads(comps.objective.generator_step(comps.model, comps.guide, comps.critic, x), params)
    pyro.set_rng_seed(3)
    elbo = _grads(ELBO().loss(comps.model, comps.guide, x) / x.shape[0], params)
    assert all(torch.equal(a, b) for a, b in zip(hybrid, elbo))


def test_vae_gan_critic_sees_the_bernoulli_decoders_means():
    """A Bernoulli p(x|z) cannot be sampled differentiably: VAE-GAN's critic sees E[x|z], a differentiable function of
    the decoder, so the adversarial term reaches the decoder's weights."""
    comps = _components("vae", "diagonal", "elbo+gan:1", "digits", {"latent_dim": 3, "hidden": [16]})
    x = comps.data.train.x[:32].round()
    loss = comps.objective.generator_loss(comps.critic(comps.objective._samples(comps.model, x)))
    grads = _grads(loss, list(comps.model.decoder.parameters()))
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)


def _mmd(a, b, bandwidth=1.0):
    """Unbiased squared MMD with a Gaussian kernel and its standard error over 20 disjoint blocks."""
    values = []
    for pa, pb in zip(a.chunk(20), b.chunk(20)):
        k = lambda u, v: torch.exp(-torch.cdist(u, v) ** 2 / (2 * bandwidth ** 2))  # noqa: E731
        n, m = len(pa), len(pb)
        kaa, kbb, kab = k(pa, pa), k(pb, pb), k(pa, pb)
        values.append((kaa.sum() - kaa.diag().sum()) / (n * (n - 1)) + (kbb.sum() - kbb.diag().sum()) / (m * (m - 1))
                      - 2 * kab.mean())
    v = torch.stack(values)
    return float(v.mean()), float(v.std() / len(v) ** 0.5)


def _blob(folder):
    """A correlated 2-D Gaussian far from the origin: 4000/1000/1000 points (an encoder must move and shape it)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = np.array([[2.0, 0.0], [1.5, 0.5]])

    def draw(n):
        return (rng.standard_normal((n, 2)) @ a.T + np.array([3.0, -1.0])).astype(np.float32)

    path = os.path.join(folder, "blob.npz")
    np.savez(path, x_train=draw(4000), x_valid=draw(1000), x_test=draw(1000))
    return path


def test_the_latent_critic_drives_the_aggregate_posterior_to_the_prior(tmp_path):
    """A 2-D toy encoded to a 2-D latent by the Gaussian encoder: with the latent critic (aae:3) the aggregate posterior
    q(z) of the test points is indistinguishable from p(z) = N(0, I) by a kernel two-sample statistic (within 3
    standard errors of 0, plus 0.005 for the adversarial equilibrium's noise; measured 0.0096 +- 0.0035); without it
    (aae:0, a plain auto-encoder) it is far from the prior (measured 0.44 +- 0.015)."""
    from zoo.cli.assemble import load_run

    data = _blob(str(tmp_path))
    found = {}
    for weight, epochs in (("3", 10), ("0", 4)):
        out = str(tmp_path / f"aae{weight}")
        config = make_config("vae", "diagonal", f"aae:{weight}", data, "none",
                             {"latent_dim": 2, "hidden": [32], "likelihood": "gaussian", "sigma": 1.0},
                             TrainConfig(epochs=epochs, batch_size=100, seed=0, progress=False, critic="mlp"),
                             device="cpu")
        train_run(config, out, progress=False)
        comps = load_run(out, torch.device("cpu"))
        with torch.no_grad():
            pyro.set_rng_seed(0)
            z_q = comps.guide(comps.data.test.x)["z"]
            z_p = torch.randn(len(z_q), 2, generator=torch.Generator().manual_seed(0))
        found[weight] = _mmd(z_q, z_p)
    (matched, se), (unmatched, se0) = found["3"], found["0"]
    assert abs(matched) < 3 * se + 0.005, found
    assert unmatched > 10 * se0 and unmatched > 20 * abs(matched), found


def _config(objective, model="vae", guide="diagonal", data="digits", **train):
    options = {"latent_dim": 3, "hidden": [16]}
    if model == "realnvp":
        options = {"hidden": [8], "flow_depth": 2}
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 128, "seed": 5, "progress": False, "checkpoint_every": 4,
                         "critic": "mlp", **train})
    binarize = "dynamic" if model == "vae" and data == "digits" else "none"
    return make_config(model, guide, objective, data, binarize, options, cfg, device="cpu")



@pytest.mark.parametrize("objective, model, guide, data", [
    ("aae", "vae", "deterministic", "digits"),
    ("elbo+gan:1", "vae", "diagonal", "digits"),
    ("hybrid:1", "realnvp", "none", "moons"),
])
def test_a_killed_hybrid_run_resumes_bit_for_bit(tmp_path, objective, model, guide, data,
                                                 killed_run_resumes_bit_for_bit):
    epochs = 2 if data == "digits" else 1  # moons: 10000 points, 79 steps an epoch
    parts = ("model", "critic") + (("guide",) if guide != "none" else ())
    killed_run_resumes_bit_for_bit(lambda: _config(objective, model, guide, data, epochs=epochs), tmp_path,
                                   parts=parts, saved_step=16)


def run(argv, capsys):
    code = zoo_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--model", "vae", "--objective", "hybrid:1"], "needs a model with an exact density and a sampler"),
    (["--model", "vae", "--objective", "adv"], "needs a model with an exact density and a sampler"),
    (["--model", "realnvp", "--objective", "hybrid:-1"], "LAMBDA must be a number >= 0; it weighs the adversarial term "
                                                         "against the NLL"),
    (["--model", "vae", "--objective", "elbo+gan:x"], "must be a number >= 0"),
    (["--model", "m2", "--guide", "semi-supervised", "--objective", "aae", "--labels", "100"], "aae"),
    (["--model", "gan", "--objective", "aae"], "is an implicit generator"),
    (["--model", "gan", "--objective", "elbo+gan:1"], "is an implicit generator"),
])
def test_bad_hybrid_input_is_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(["train", "--data", "digits", "--epochs", "1", "--no-progress", "--device", "cpu",
                        "--out", str(tmp_path / "r")] + argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
