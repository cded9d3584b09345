"""The adversarial family: implicit generators as Pyro models, the critics' estimates against exact divergences,
WGAN-GP's penalty, two-player training resumed bit for bit after a kill, data-parallel GANs, and bad input."""
import json
import math
import os
import socket

import pyro
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from inference import run_dir as rd
from inference.adversarial import MinimaxGAN, NonSaturatingGAN, WGANGP
from inference.checkpoint import load
from inference.training import TrainConfig
from zoo.cli.main import main as zoo_main
from zoo.cli.runs import make_config
from zoo.gan import DCGAN, GAN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(argv, capsys):
    code = zoo_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------- the Pyro model
@pytest.mark.parametrize("cls", [GAN, DCGAN])
def test_the_generator_is_a_pyro_model_z_from_the_prior_x_equal_g_of_z(cls):
    model = cls(784, latent_dim=8, image_shape=(1, 28, 28)).eval()
    like = torch.zeros(1)
    pyro.set_rng_seed(3)
    drawn = model.sample(5, like)
    pyro.set_rng_seed(3)
    z = torch.randn(5, 8)
    assert torch.equal(drawn, model.generate(z))  # z ~ N(0, I) inside the data plate, x = G(z)
    assert drawn.shape == (5, 784) and bool(((drawn >= 0) & (drawn <= 1)).all())  # sigmoid output
    trace = pyro.poutine.trace(model).get_trace(torch.zeros(5, 784))
    assert trace.nodes["x"]["is_observed"] and trace.nodes["z"]["fn"].batch_shape == (5,)
    assert model.implicit and model.latent_sites() == []


# ------------------------------------------------------------------------------------- critics vs exact values
def _gauss_logpdf(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def _two_jsd(mu_p, mu_q, sigma=1.0):
    """2 JSD(P || Q) of two 1-D Gaussians by quadrature (float64)."""
    x = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    lp, lq = _gauss_logpdf(x, mu_p, sigma), _gauss_logpdf(x, mu_q, sigma)
    lm = torch.logaddexp(lp, lq) - math.log(2)
    integrand = lp.exp() * (lp - lm) + lq.exp() * (lq - lm)
    return float(torch.trapezoid(integrand, x))


def _train_critic(objective, mu_p, mu_q, steps=600, n=512, seed=0):
    torch.manual_seed(seed)
    critic = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    score = lambda x: critic(x).squeeze(-1)  # noqa: E731
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(steps):
        xp, xq = torch.randn(n, 1) + mu_p, torch.randn(n, 1) + mu_q
        loss, _ = objective.critic_terms(score, xp, xq)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        xp, xq = torch.randn(200000, 1) + mu_p, torch.randn(200000, 1) + mu_q
        return float(objective.divergence_estimate(score(xp), score(xq))), score


@pytest.mark.parametrize("objective", [MinimaxGAN(), NonSaturatingGAN()], ids=["gan", "gan-ns"])
def test_the_gan_critic_estimates_twice_the_jensen_shannon_divergence(objective):
    exact = _two_jsd(0.0, 1.5)
    estimate, score = _train_critic(objective, 0.0, 1.5)
    # a lower bound that a flexible critic nearly attains: within 0.02 nats (Monte Carlo error ~0.002)
    assert exact - 0.02 < estimate < exact + 0.01
    # the optimal critic D*(x) = p / (p + q): its logit is log p(x) - log q(x) = -1.5 x + 1.125
    grid = torch.linspace(-0.5, 2.0, 6).unsqueeze(-1)  # where both densities have mass
    with torch.no_grad():
        assert torch.allclose(score(grid), -1.5 * grid.squeeze(-1) + 1.125, atol=0.2)  # SGD noise: ~0.15 off


def test_the_wgan_gp_critic_estimates_the_wasserstein_distance():
    """P = N(0, 1), Q = N(2, 1): W1 = 2, attained by the potential V(x) = -x. The penalty is soft: a linear critic of
    slope -s earns 2 s - LAMBDA (s - 1)^2, maximal at s = 1 + W1 / (2 LAMBDA) = 1.1 for LAMBDA = 10, so the estimate is
    W1 (1 + W1 / (2 LAMBDA)) = 2.2, which tends to W1 as LAMBDA grows."""
    estimate, score = _train_critic(WGANGP(), 0.0, 2.0, steps=800)
    assert 2.15 < estimate < 2.25
    grid = torch.linspace(-1.0, 3.0, 9).unsqueeze(-1)
    with torch.no_grad():
        slope = (score(grid[1:]) - score(grid[:-1])) / 0.5
    assert torch.allclose(slope, torch.full_like(slope, -1.1), atol=0.1)
    estimate, _ = _train_critic(WGANGP(200.0), 0.0, 2.0, steps=800)
    assert 1.95 < estimate < 2.04  # 2 (1 + 2 / 400) = 2.01


def test_the_gradient_penalty_of_a_linear_critic_is_exact():
    torch.manual_seed(0)
    critic = nn.Linear(5, 1)
    score = lambda x: critic(x).squeeze(-1)  # noqa: E731
    xp, xq = torch.randn(64, 5), torch.randn(64, 5) + 1
    objective = WGANGP(4.0)
    loss, estimate = objective.critic_terms(score, xp, xq)
    w = critic.weight.detach().squeeze(0)
    assert float(objective.gradient_penalty(score, xp, xq)) == pytest.approx(float((w.norm() - 1) ** 2), rel=1e-6)
    with torch.no_grad():
        gap = score(xp).mean() - score(xq).mean()
    assert float(estimate) == pytest.approx(float(gap), rel=1e-6)
    assert float(loss) == pytest.approx(float(-gap + 4.0 * (w.norm() - 1) ** 2), rel=1e-5)


def test_generator_losses_push_samples_toward_the_data():
    """Minimax and non-saturating generator losses have the same sign of gradient in v (both raise the critic's score
    of the samples) but the minimax one vanishes where D rejects the samples (v -> -inf), the saturation of
    Goodfellow et al."""
    v = torch.tensor([-8.0, 0.0, 3.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(MinimaxGAN().generator_loss(v), v)
    (g_ns,) = torch.autograd.grad(NonSaturatingGAN().generator_loss(v), v)
    assert bool((g_mm < 0).all()) and bool((g_ns < 0).all())
    assert float(g_mm[0]) > -1e-3 / 3 and float(g_ns[0]) < -0.99 / 3  # saturated vs not, at v = -8


# ---------------------------------------------------------------------------------------- two-player training

def _gan_config(objective="gan-ns", epochs=2, checkpoint_every=0, batch_size=128, critic="mlp", **train):
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, seed=5, progress=False, checkpoint_every=checkpoint_every,
                      critic=critic, **train)
    return make_config("gan", "none", objective, "digits", "none", {"latent_dim": 4, "hidden": [32]}, cfg,
                       device="cpu")


@pytest.mark.parametrize("objective", ["gan-ns", "wgan-gp"])
def test_a_killed_two_player_run_resumes_bit_for_bit(tmp_path, objective, killed_run_resumes_bit_for_bit):
    """digits: 1437 training points, batch 128 -> 12 steps an epoch; wgan-gp's 5 critic steps per generator step do
    not divide it, so the rhythm must carry over epochs and the resume."""
    full, _, a, _ = killed_run_resumes_bit_for_bit(lambda: _gan_config(objective, checkpoint_every=4), tmp_path,
                                                   parts=("model", "critic"), saved_step=16)
    metrics_full = rd.read_metrics(full)
    # both players' losses per epoch; wgan-gp: one generator step per 5 critic steps (24 steps -> 4 generator steps)
    assert all(r["generator_loss"] is not None and r["critic_loss"] is not None for r in metrics_full)
    config = json.load(open(os.path.join(full, rd.CONFIG)))
    assert config["critic_parameters"] > 0
    g_steps = a["optimizer"]["state"][0]["step"]
    assert float(g_steps) == (24 if objective == "gan-ns" else 24 // 5)


def test_the_papers_optimizer_settings_are_the_defaults(tmp_path):
    from zoo.cli.assemble import build_components
    from inference.adversarial_training import AdversarialTrainer

    for objective, lr, betas, steps in (("gan-ns", 2e-4, (0.5, 0.999), 1), ("wgan-gp", 1e-4, (0.0, 0.9), 5)):
        config = _gan_config(objective)
        comps = build_components(config, torch.device("cpu"))
        trainer = AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data,
                                     TrainConfig(**config["train"]), str(tmp_path), critic=comps.critic)
        for opt in (trainer.optimizer, trainer.critic_optimizer):
            assert opt.param_groups[0]["lr"] == lr and tuple(opt.param_groups[0]["betas"]) == betas
        assert trainer.config.critic_steps == steps
        generator = {id(p) for p in comps.model.parameters()}
        assert not generator & {id(p) for p in trainer.extra_params}


# -------------------------------------------------------------------------------------------------- DDP
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_gan(out, batch_size, crash=None):
    from inference.adversarial_training import AdversarialTrainer
    from zoo.cli.assemble import build_components

    config = _gan_config("wgan-gp", epochs=1, batch_size=batch_size, critic_steps=2, lr=1e-3)
    pyro.set_rng_seed(5)
    comps = build_components(config, torch.device("cpu"))
    os.makedirs(out, exist_ok=True)
    AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]), out,
                       "gan", config, critic=comps.critic).fit()
    flat = lambda m: torch.cat([v.flatten() for _, v in sorted(m.state_dict().items())])  # noqa: E731
    return torch.cat([flat(comps.model), flat(comps.critic)])


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from inference.distributed import init_from_env, shutdown

    init_from_env("cpu")
    params = _train_gan(out, 128)
    torch.save({"params": params}, os.path.join(out, f"rank{rank}.pt"))
    shutdown()


def test_a_two_process_gan_matches_one_process_on_the_combined_batch(tmp_path):
    out = str(tmp_path / "ddp")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
    ranks = [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True)["params"] for r in range(2)]
    assert torch.equal(ranks[0], ranks[1])  # both players' gradients averaged: identical on every rank
    combined = _train_gan(str(tmp_path / "combined"), 256)
    alone = _train_gan(str(tmp_path / "alone"), 128)
    pyro.set_rng_seed(5)
    from zoo.cli.assemble import build_components

    comps = build_components(_gan_config("wgan-gp", epochs=1), torch.device("cpu"))
    init = torch.cat([torch.cat([v.flatten() for _, v in sorted(m.state_dict().items())])
                      for m in (comps.model, comps.critic)])
    # same data each step, only the generator's noise differs between the ranks and the single process
    assert (ranks[0] - combined).norm() < 0.5 * (combined - init).norm()
    assert (ranks[0] - combined).norm() < 0.7 * (alone - combined).norm()


# ------------------------------------------------------------------------------------------- a user's model
USER_GENERATOR = '''
import pyro, pyro.distributions as dist, torch
from torch import nn

net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())

def generator(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
        pyro.sample("x", dist.Delta(net(z), event_dim=1), obs=x)

generator.implicit = True
'''


def test_a_users_implicit_pyro_model_trains_adversarially(tmp_path, capsys):
    path = tmp_path / "my_gan.py"
    path.write_text(USER_GENERATOR)
    out = str(tmp_path / "run")
    code, stdout, err = run(["train", "--model", f"{path}:generator", "--guide", "none", "--objective", "gan-ns",
                             "--data", "digits", "--binarize", "none", "--critic", "mlp", "--epochs", "1",
                             "--no-progress", "--device", "cpu", "--out", out], capsys)
    assert code == 0, err
    state = load(os.path.join(out, rd.CHECKPOINT))
    assert any(k.startswith("used_modules.net") for k in state["model"]) and state["critic"]
    assert state["optimizer"]["state"]  # the user's network was trained by the generator's optimizer


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv, message", [
    (["--model", "gan", "--objective", "elbo"], "is an implicit generator (x = G(z), no density); train it with an "
                                                "adversarial objective: fgan:NAME, gan, gan-ns, wgan-gp"),  # those that need samples only
    (["--model", "vae", "--objective", "gan-ns", "--binarize", "dynamic"], "cannot be sampled differentiably"),
    (["--model", "gan", "--objective", "wgan-gp:-1"], "LAMBDA must be a number >= 0"),
    (["--model", "gan", "--objective", "fgan:nosuch"], "unknown f-divergence 'nosuch'; choose one of: alpha:A, gan, "
                                                       "jeffrey, jensen-shannon, jensen-shannon-weighted:PI, kl"),
    (["--model", "gan", "--objective", "fgan:alpha:1"], "undefined at A = 1; its limit there is KL(P||Q): use kl"),
    (["--model", "gan", "--objective", "fgan:jensen-shannon-weighted:2"], "PI must lie strictly between 0 and 1"),
    (["--model", "gan", "--objective", "fgan"], "needs its NAME: write fgan:NAME (e.g. fgan:kl)"),
    (["--model", "vae", "--critic", "mlp"], "--critic mlp is for adversarial objectives"),
    (["--model", "gan", "--critic", "nosuch"], "unknown critic 'nosuch'; choose one of: dcgan, mlp"),
    (["--model", "gan", "--betas", "0.5"], "expected two numbers B1,B2"),
    (["--model", "gan", "--data", "moons"], "model dcgan is for images" if False else "outside the generator's output "
                                                                                     "range [0, 1]"),
    (["--model", "dcgan", "--data", "moons", "--model-option", "output=none"], "model dcgan is for images"),
])
def test_bad_adversarial_input_is_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(["train", "--data", "digits", "--epochs", "1", "--no-progress", "--device", "cpu",
                        "--out", str(tmp_path / "r")] + argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
