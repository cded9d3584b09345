"""InfoGAN (Chen et al. 2016): the generator as a Pyro model, Q(c|x) as a guide, the mutual-information bound, training
with exact resume, the code's accuracy, and bad input."""
import json
import math
import os

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from guides.infogan import InfoGANGuide
from inference import run_dir as rd
from inference.infogan import InfoGANObjective, hungarian_accuracy, information_terms, matched_accuracy
from inference.training import TrainConfig
from zoo.cli.main import main as zoo_main
from zoo.cli.runs import make_config
from zoo.infogan import InfoGAN

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 10
LOG_K = math.log(K)


def run(argv, capsys):
    code = zoo_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------- the Pyro model
def test_the_model_samples_the_codes_uniformly_and_g_gets_them():
    model = InfoGAN(64, latent_dim=16, categorical=K, continuous=2, hidden=[32], width=8, image_shape=(1, 8, 8)).eval()
    assert model.noise_dim == 4 and model.implicit and model.latent_sites() == []
    n = 20000
    trace = poutine.trace(model).get_trace(torch.zeros(n, 64))
    c, c_cont = trace.nodes["c"]["value"], trace.nodes["c_cont"]["value"]
    assert trace.nodes["c"]["fn"].batch_shape == (n,) and trace.nodes["z"]["value"].shape == (n, 4)
    counts = torch.bincount(c, minlength=K).double()
    chi2 = float(((counts - n / K) ** 2 / (n / K)).sum())
    assert chi2 < 27.9  # chi-square with 9 degrees of freedom: P(> 27.9) = 0.001
    assert bool((c_cont.abs() <= 1).all()) and abs(float(c_cont.mean())) < 0.02  # U(-1, 1)
    assert float(c_cont.var()) == pytest.approx(1 / 3, abs=0.02)
    # fixing the codes fixes x: x = G(z, onehot(c), c'), and each code changes it
    z, u = torch.randn(5, 4), torch.rand(5, 2) * 2 - 1
    xs = []
    for k in range(K):
        ck = torch.full((5,), k)
        conditioned = poutine.condition(model, data={"z": z, "c": ck, "c_cont": u})
        x = poutine.trace(conditioned).get_trace(torch.zeros(5, 64)).nodes["x"]["fn"].mean
        assert torch.equal(x, model.generate(z, ck, u))
        manual = model.out_act(model.upsample(model.project(torch.cat([z, F.one_hot(ck, K).float(), u], -1))
                                              .reshape(-1, *model.start))).reshape(5, 64)
        assert torch.equal(x, manual)
        xs.append(x)
    assert all((xs[0] - x).abs().max() > 1e-4 for x in xs[1:])
    other_u = poutine.trace(poutine.condition(model, data={"z": z, "c": torch.zeros(5, dtype=torch.long),
                                                           "c_cont": -u})).get_trace(torch.zeros(5, 64))
    assert (other_u.nodes["x"]["fn"].mean - xs[0]).abs().max() > 1e-4


# ------------------------------------------------------------------------------------ the MI lower bound
def _toy(recoverable: bool):
    """c ~ Cat(1/K); x = onehot(c) + 0.1 eps (recoverable) or x = eps (independent of c), as a plain Pyro model."""

    def model(x, y=None):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=x.new_zeros(K)))
            eps = pyro.sample("eps", dist.Normal(x.new_zeros(K), 1.0).to_event(1))
            signal = F.one_hot(c, K).to(x.dtype) if recoverable else 0.0
            pyro.sample("x", dist.Delta(signal + (0.1 if recoverable else 1.0) * eps, event_dim=1), obs=x)

    model.data_dim = K
    linear = nn.Linear(K, K)

    def guide(x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Categorical(logits=linear(x)))

    return model, guide, linear


def _bound(model, guide, n=20000):
    with torch.no_grad():
        terms, _ = information_terms(model, guide, n, torch.zeros(1))
    assert list(terms) == ["c"]  # eps is the model's noise, not a code: the guide does not sample it
    term = terms["c"]
    assert float(term.entropy.mean()) == pytest.approx(LOG_K, abs=1e-6)
    return float(term.bound()), term


def _train_q(model, guide, linear, steps=300):
    opt = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(steps):
        terms, _ = information_terms(model, guide, 256, torch.zeros(1))
        loss = -terms["c"].bound()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_the_mi_bound_never_exceeds_the_entropy_of_c_and_reaches_it_for_a_recoverable_code():
    torch.manual_seed(0)
    model, guide, linear = _toy(recoverable=True)
    for scale in (0.1, 1.0, 10.0, 100.0):  # random Q, from nearly uniform to very confident
        nn.init.normal_(linear.weight, std=scale)
        bound, term = _bound(model, guide, 4000)
        assert bound <= LOG_K and bool((term.log_q <= 0).all())
    linear.reset_parameters()
    _train_q(model, guide, linear)
    bound, term = _bound(model, guide)
    assert LOG_K - 0.05 < bound <= LOG_K  # Q recovers c from x: the bound approaches H(c) = log 10 from below
    # the identity of Q = argmax: a Q that says the true code surely attains H(c) exactly, and no Q does better
    with torch.no_grad():
        linear.weight.copy_(1000 * torch.eye(K))
        linear.bias.zero_()
    assert _bound(model, guide)[0] == pytest.approx(LOG_K, abs=1e-6)


def test_the_mi_bound_stays_at_or_below_zero_for_a_code_the_generator_ignores():
    torch.manual_seed(1)
    model, guide, linear = _toy(recoverable=False)
    _train_q(model, guide, linear, steps=150)
    bound, _ = _bound(model, guide)
    assert -0.1 < bound < 0.02  # I(c; x) = 0: E log Q(c|x) <= -H(c) for every Q (Monte Carlo error ~0.003)


def test_the_generator_step_is_gan_ns_minus_lambda_times_the_bound_and_lambda_0_is_gan_ns():
    from inference.adversarial import NonSaturatingGAN
    from zoo.critics import MLPCritic

    torch.manual_seed(0)
    model = InfoGAN(64, latent_dim=16, hidden=[32], width=8, image_shape=(1, 8, 8))
    guide = InfoGANGuide(model, hidden=16, width=8)
    critic = MLPCritic(64, hidden=(16,))
    x = torch.rand(32, 64)

    def step(objective, seed=3):
        for p in list(model.parameters()) + list(guide.parameters()):
            p.grad = None
        torch.manual_seed(seed)
        loss = objective.generator_step(model, guide, critic, x)
        loss.backward()
        return loss.detach(), [None if p.grad is None else p.grad.clone() for p in model.parameters()], \
            [None if p.grad is None else p.grad.clone() for p in guide.parameters()]

    loss0, g0, q0 = step(InfoGANObjective("0"))
    torch.manual_seed(3)
    plain = NonSaturatingGAN().generator_step(model, guide, critic, x)
    assert torch.equal(loss0, plain.detach())  # same samples, same loss: infogan:0 is gan-ns
    assert all(g is not None for g in g0) and all(q is None for q in q0)  # Q gets nothing from gan-ns
    loss1, g1, q1 = step(InfoGANObjective())
    torch.manual_seed(3)
    with torch.no_grad():
        terms, fake = information_terms(model, guide, 32, x)
        expected = (NonSaturatingGAN().generator_loss(critic(fake)) - terms["c"].bound()
                    - 0.1 * terms["c_cont"].bound())
    assert float(loss1) == pytest.approx(float(expected), rel=1e-5)
    assert all(q is not None and bool(torch.isfinite(q).all()) for q in q1)  # Q is trained by the generator's step
    assert any(not torch.equal(a, b) for a, b in zip(g0, g1))  # and the information term reaches G


def test_both_players_step_on_the_meta_device():
    from zoo.critics import DCGANCritic

    pyro.enable_validation(False)
    model = InfoGAN(64, latent_dim=16, hidden=[32], width=8, image_shape=(1, 8, 8)).to("meta")
    guide = InfoGANGuide(model, hidden=16, width=8).to("meta")
    critic = DCGANCritic(64, image_shape=(1, 8, 8), width=8).to("meta")
    x = torch.empty(6, 64, device="meta")
    objective = InfoGANObjective()
    loss, estimate = objective.critic_step(model, guide, critic, x)
    loss.backward()
    assert estimate.device.type == "meta" and all(p.grad is not None for p in critic.parameters())
    for p in critic.parameters():
        p.requires_grad_(False)
    objective.generator_step(model, guide, critic, x).backward()
    assert all(p.grad is not None and p.grad.device.type == "meta"
               for p in list(model.parameters()) + list(guide.parameters()))


def test_the_hungarian_matching_finds_a_permuted_labelling():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 1000)
    perm = rng.permutation(K)
    codes = perm[labels]
    noisy = codes.copy()
    noisy[:100] = rng.integers(0, K, 100)  # ~90 of them change
    accuracy, matching, confusion = hungarian_accuracy(codes, labels, K)
    assert accuracy == 1.0 and all(matching[int(perm[k])] == k for k in range(K))
    assert confusion.sum() == 1000
    acc_noisy, match_noisy, _ = hungarian_accuracy(noisy, labels, K)
    assert acc_noisy == pytest.approx(float((noisy == codes).mean())) and match_noisy == matching
    assert matched_accuracy(noisy, labels, matching) == pytest.approx(acc_noisy)


# ---------------------------------------------------------------------------------------- training and resume

def _config(epochs=2, checkpoint_every=0, objective="infogan"):
    cfg = TrainConfig(epochs=epochs, batch_size=128, seed=7, progress=False, checkpoint_every=checkpoint_every,
                      critic="mlp")
    config = make_config("infogan", "infogan", objective, "digits", "none",
                         {"latent_dim": 16, "hidden": [32], "width": 8}, cfg, device="cpu")
    config["guide_options"] = {"hidden": 16, "width": 8}
    return config


def test_a_killed_infogan_run_resumes_bit_for_bit_and_records_the_bound(tmp_path, capsys,
                                                                      killed_run_resumes_bit_for_bit):
    keys = ("train_loss", "valid_loss", "critic_loss", "generator_loss", "mi_bound", "mi_bound_continuous",
            "valid_code_accuracy")
    full, _, a, _ = killed_run_resumes_bit_for_bit(lambda: _config(checkpoint_every=4), tmp_path, metrics=keys,
                                                   saved_step=16)
    metrics_full = rd.read_metrics(full)
    for row in metrics_full:
        assert row["mi_bound"] <= row["code_entropy"] == pytest.approx(LOG_K)
        assert 0 <= row["valid_code_accuracy"] <= 1
    # the guide's parameters are stepped by the generator's optimizer (model + guide)
    n_gen = len(list(InfoGAN(64, latent_dim=16, hidden=[32], width=8, image_shape=(1, 8, 8)).parameters()))
    assert len(a["optimizer"]["state"]) > n_gen

    code, stdout, err = run(["evaluate", full, "--quality-samples", "0", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    summary = json.load(open(os.path.join(full, rd.EVAL)))
    assert summary["implicit"] and summary["nll"] is None
    assert f"{'code accuracy':<18} {100 * summary['code_accuracy']['mean']:9.2f}% +- " in stdout
    acc = summary["code_accuracy"]
    assert 0 <= acc["mean"] <= 1 and acc["se"] >= 0 and len(summary["code_confusion"]) == K
    assert sum(map(sum, summary["code_confusion"])) == summary["protocol"]["num_points"] == sum(summary["code_usage"])
    assert sorted(summary["code_matching"].values()) == list(range(K))


def test_the_papers_optimizer_settings_are_the_defaults(tmp_path):
    """Chen et al. 2016, appendix: Adam with beta1 0.5, lr 2e-4 for D and 1e-3 for G; Q rides with G."""
    from inference.adversarial_training import AdversarialTrainer
    from zoo.cli.assemble import build_components

    config = _config()
    comps = build_components(config, torch.device("cpu"))
    trainer = AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data,
                                 TrainConfig(**config["train"]), str(tmp_path), critic=comps.critic)
    for opt, lr in ((trainer.optimizer, 1e-3), (trainer.critic_optimizer, 2e-4)):
        assert opt.param_groups[0]["lr"] == lr and tuple(opt.param_groups[0]["betas"]) == (0.5, 0.999)
    generator = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in comps.guide.parameters()} <= generator
    assert not generator & {id(p) for p in comps.critic.parameters()}


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv, message", [
    (["--latent-dim", "12"], "the codes (categorical 10 + continuous 2 = 12 inputs of G) do not fit --latent-dim 12"),
    (["--model-option", "categorical=1"], "categorical=1 must be a whole number >= 2"),
    (["--model-option", "categorical=2.5"], "categorical=2.5 must be a whole number >= 2"),
    (["--model-option", "continuous=-1"], "continuous=-1 must be a whole number >= 0"),
    (["--model-option", "categorical=72"], "(categorical 72 + continuous 2 = 74 inputs of G) do not fit --latent-dim"),
    (["--objective", "infogan:-1"], "LAMBDA must be a number >= 0"),
    (["--objective", "infogan:abc"], "LAMBDA must be a number >= 0"),
    (["--guide", "none"], "guide EmptyGuide samples none of the model's latents; use --model infogan with --guide "
                          "infogan"),
    (["--guide-option", "sigma=0"], "sigma=0 must be a positive number"),
])
def test_bad_infogan_input_is_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(["train", "--model", "infogan", "--data", "digits", "--epochs", "1", "--no-progress",
                        "--device", "cpu", "--out", str(tmp_path / "r")] + argv, capsys)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_the_infogan_guide_and_objective_refuse_a_generator_without_codes(tmp_path, capsys):
    code, _, err = run(["train", "--model", "gan", "--guide", "infogan", "--data", "digits", "--no-progress",
                        "--device", "cpu", "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "guide infogan is the auxiliary Q(c|x) of an InfoGAN generator" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(["train", "--model", "gan", "--objective", "infogan", "--data", "digits", "--no-progress",
                        "--device", "cpu", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "samples none of the model's latents" in err and len(err.strip().splitlines()) == 1
