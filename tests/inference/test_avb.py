"""Adversarial variational Bayes (Mescheder, Nowozin & Geiger 2017) and the implicit guide: the critic's optimum
against the exact log q(z|x) - log p(z), the generator's loss against the exact -ELBO and its gradient against the
path derivative, the implicit guide as a Pyro program, the fitted-Gaussian evaluation against an exact log p(x), a
killed AVB run resumed bit for bit, and bad input."""
import json
import math
import os

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import guides.implicit  # noqa: F401  (registers the guide implicit)
from guides.base import build_guide, check_guide_matches
from inference import run_dir as rd
from inference.avb import AVB
from inference.evaluation import importance_sample
from inference.fitted_proposal import FittedGaussianProposal
from inference.training import TrainConfig
from zoo.cli.main import main as zoo_main
from zoo.cli.runs import evaluate_run, make_config
from zoo.critics import MLPCritic
from zoo.latents import LatentSite
from zoo.model import ZooModel, data_plate
from zoo.vae import VAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ------------------------------------------------------------------ a toy where q(z|x) and p(z) are known Gaussians
A = torch.tensor([[0.8, -0.3], [0.2, 0.5]])
B = torch.tensor([0.3, -0.2])
S = 0.4  # q(z|x) = N(A x + b, S^2 I): the "encoder" z = A x + b + S eps


class ToyModel(ZooModel):
    """z ~ N(0, I_2), x | z ~ N(z, I_2)."""

    def __init__(self):
        super().__init__(2)

    def latent_sites(self):
        return [LatentSite("z", 2)]

    def forward(self, x, y=None):
        with data_plate(x):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


class LinearGaussianGuide(nn.Module):
    """q(z|x) = N(A x + b, s^2 I) with A, b, s as parameters (s = exp(log_s))."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(A.clone()), nn.Parameter(B.clone())
        self.log_s = nn.Parameter(torch.tensor(math.log(S)))

    def forward(self, x, y=None):
        with data_plate(x):
            return pyro.sample("z", dist.Normal(x @ self.a.T + self.b, self.log_s.exp()).to_event(1))


def log_ratio(x, z, a=A, b=B, s=S):
    """The exact log q(z|x) - log p(z) of the toy."""
    log_q = dist.Normal(x @ a.T + b, s).to_event(1).log_prob(z)
    return log_q - dist.Normal(torch.zeros(2), 1.0).to_event(1).log_prob(z)


class ExactCritic(nn.Module):
    """T*(x, z) = log q(z|x) - log p(z), with q's parameters read (detached) from the guide: a fixed critic."""

    def __init__(self, guide):
        super().__init__()
        self._guide = (guide,)

    def forward(self, pairs):
        g = self._guide[0]
        return log_ratio(pairs[..., :2], pairs[..., 2:], g.a.detach(), g.b.detach(), g.log_s.detach().exp())


def test_the_optimal_critic_is_log_q_minus_log_p():
    """Only the critic trains, by avb's own critic step (q-pairs labelled 1, prior pairs 0, the same x), the zoo's
    mlp critic on [x, z]. On 20000 held-out pairs (x, z ~ q(z|x)) the true log-ratio has a spread (std) of 1.1 nats
    and a 5-95 % range of about 3.7 nats; T is within 0.15 nats of it in mean absolute error (measured 0.089 with these
    1000 steps, 0.075 with 1500) and unbiased within 0.1 nats. A critic that learnt log q alone would be off by the
    mean of -log p(z), ~3 nats."""
    torch.manual_seed(0)
    model, guide, objective = ToyModel(), LinearGaussianGuide(), AVB()
    critic = MLPCritic(4, hidden=(64, 64))
    steps = 1000
    opt = torch.optim.Adam(critic.parameters(), lr=4e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss, _ = objective.critic_step(model, guide, critic, torch.randn(512, 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    with torch.no_grad():
        x = torch.randn(20000, 2)
        z = x @ A.T + B + S * torch.randn(20000, 2)
        truth, t = log_ratio(x, z), critic(torch.cat([x, z], -1))
    spread = truth.quantile(0.95) - truth.quantile(0.05)
    assert truth.std() > 1.0 and spread > 3.0
    error = t - truth
    assert error.abs().mean() < 0.15, float(error.abs().mean())
    assert abs(float(error.mean())) < 0.1
    assert (t - dist.Normal(x @ A.T + B, S).to_event(1).log_prob(z)).abs().mean() > 1.0  # it is not log q alone


def test_the_generator_loss_with_the_optimal_critic_is_the_negative_elbo():
    """With T = T*, avb's generator loss E_q[T*(x, z) - log p(x|z)] is, sample for sample, -(log p(x, z) - log q(z|x))
    = Trace_ELBO's loss on the same z, and in expectation the closed-form -ELBO = KL(q || p) - E_q log N(x; z, I).
    Its gradient for the guide is the path derivative (the score term of log q dropped, Mescheder et al.'s
    Proposition 2): exactly the gradient of -[log p(x, z) - log q_{stop}(z|x)] on the same z."""
    model, guide, objective = ToyModel(), LinearGaussianGuide(), AVB()
    critic = ExactCritic(guide)
    x = torch.randn(64, 2)
    pyro.set_rng_seed(1)
    loss = objective.generator_step(model, guide, critic, x)
    pyro.set_rng_seed(1)
    elbo_loss = pyro.infer.Trace_ELBO().differentiable_loss(model, guide, x) / x.shape[0]
    assert float(loss.detach()) == pytest.approx(float(elbo_loss.detach()), abs=1e-5)

    params = list(guide.parameters())
    grads = torch.autograd.grad(loss, params)
    pyro.set_rng_seed(1)
    mu, s = x @ guide.a.T + guide.b, guide.log_s.exp()
    z = mu + s * torch.randn(64, 2)  # the same noise the guide drew
    path = (log_ratio(x, z, guide.a.detach(), guide.b.detach(), s.detach())
            - dist.Normal(z, 1.0).to_event(1).log_prob(x)).mean()
    for g, want in zip(grads, torch.autograd.grad(path, params)):
        assert torch.allclose(g, want, atol=1e-5)

    # expectation: many replicas of 4 points against the closed form
    x4 = torch.randn(4, 2)
    xs = x4.repeat(20000, 1)
    with torch.no_grad():
        z, log_px = objective.posterior_sample(model, guide, xs)
        per_point = critic(objective.pairs(xs, z)) - log_px
    mu = x4 @ A.T + B
    kl = 0.5 * (2 * S ** 2 + (mu ** 2).sum(-1) - 2 - 2 * 2 * math.log(S))
    exact = kl + math.log(2 * math.pi) + 0.5 * (((x4 - mu) ** 2).sum(-1) + 2 * S ** 2)
    estimate = per_point.reshape(20000, 4).mean(0)
    se = per_point.reshape(20000, 4).std(0) / math.sqrt(20000)
    assert ((estimate - exact).abs() < 4 * se + 1e-4).all(), (estimate, exact)


def test_the_critic_step_labels_posterior_pairs_one_and_prior_pairs_zero():
    """The critic's loss is -E_q log sigmoid(T) - E_p log(1 - sigmoid(T)), with the prior's z drawn by the model
    itself: a critic that scores T = +c on posterior pairs and -c on prior pairs has loss 2 softplus(-c)."""
    model, guide, objective = ToyModel(), LinearGaussianGuide(), AVB()
    x = torch.full((3000, 2), 10.0)  # q(z|x) sits at A x + b = (5.3, 6.8), 9 sds of z1 + z2 above the threshold 7
    critic = lambda pairs: torch.where(pairs[..., 2:].sum(-1) > 7.0, 10.0, -10.0)  # noqa: E731  (prior: 5 sds below)
    loss, estimate = objective.critic_step(model, guide, critic, x)
    assert float(loss) == pytest.approx(2 * math.log1p(math.exp(-10.0)), rel=1e-3)
    z_p = objective.prior_sample(model, x)  # the model's own prior
    assert abs(float(z_p.mean())) < 0.05 and abs(float(z_p.std()) - 1.0) < 0.05


# ------------------------------------------------------------------------- the implicit guide as a Pyro program
def _linear_vae(seed=0):
    torch.manual_seed(seed)
    model = VAE(3, latent_dim=2, hidden=(), likelihood="gaussian", sigma=0.5)
    with torch.no_grad():
        model.decoder[0].bias.copy_(torch.tensor([0.5, -1.0, 0.2]))
    return model


def _exact_posterior(model):
    w, b = model.decoder[0].weight.detach().double(), model.decoder[0].bias.detach().double()
    s2 = model.likelihood.log_sigma.detach().double().exp() ** 2
    cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w.T @ torch.diag(1 / s2) @ w)
    gain = cov @ w.T @ torch.diag(1 / s2)  # m(x) = gain (x - b)
    return gain, b, cov


def _exact_log_px(model, x):
    w, b = model.decoder[0].weight.detach().double(), model.decoder[0].bias.detach().double()
    cov = w @ w.T + torch.diag(model.likelihood.log_sigma.detach().double().exp() ** 2)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x.double())


def _exact_implicit_guide(model):
    """An implicit guide set by hand to the exact posterior: u = gain x - gain b + chol(C) eps (the linear VAE's
    encoder is the identity; one affine layer on [x, eps])."""
    guide = build_guide("implicit", model, noise_dim=2, hidden=())
    gain, b, cov = _exact_posterior(model)
    with torch.no_grad():
        layer = guide.sampler[0]
        layer.weight.copy_(torch.cat([gain, torch.linalg.cholesky(cov)], dim=1).float())
        layer.bias.copy_((-gain @ b).float())
    return guide


def test_the_implicit_guide_samples_the_models_sites_with_fresh_noise_per_particle():
    model = _linear_vae()
    guide = _exact_implicit_guide(model)
    x = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    check_guide_matches(model, guide, x)  # the noise is an auxiliary site, z the model's site
    with pyro.plate("particles", 20000, dim=-2):
        trace = pyro.poutine.trace(guide).get_trace(x)
    site = trace.nodes["z"]
    assert site["infer"].get("implicit") and isinstance(site["fn"], dist.Delta)  # log q is not Delta's 0
    assert trace.nodes["_eps"]["infer"].get("is_auxiliary")
    z = site["value"].double()  # (20000, 2, 2): independent draws per particle
    gain, b, cov = _exact_posterior(model)
    assert torch.allclose(z.mean(0), (x.double() - b) @ gain.T, atol=0.02)
    centred = z[:, 0] - z[:, 0].mean(0)
    assert torch.allclose(centred.T @ centred / 20000, cov, atol=0.02)


def test_the_fitted_gaussian_proposal_gives_the_exact_log_likelihood():
    """zoo evaluate's estimator for implicit guides: a full-covariance Gaussian from the moments of 128 draws of q(z|x)
    per point, refined per point on its ELBO, as the proposal. With q the exact posterior of a linear-Gaussian VAE,
    the weights are nearly constant and the estimate is the exact log N(x; b, W W^T + s^2 I) within 0.02 nats; read
    through Delta's zero density instead it would be off by about a nat."""
    model = _linear_vae()
    guide = _exact_implicit_guide(model)
    x = torch.randn(50, 3) * 1.5
    exact = _exact_log_px(model, x)
    proposal = FittedGaussianProposal(guide, model).prepare(x, 50)
    out = importance_sample(model, proposal, x, num_samples=500, batch_size=50, keep_log_weights=True)
    log_px = torch.as_tensor(out["log_px"])
    assert (log_px - exact).abs().max() < 0.02, float((log_px - exact).abs().max())
    assert float(torch.as_tensor(out["log_weights"]).std(1).max()) < 0.5  # r ~ the posterior (128 draws: ~10 % error)
    assert proposal.fit_summary()["points_refined"] == 50 and proposal.fit_summary()["points_moments_only"] == 0
    # what the proposal prevents: Delta's log q = 0 makes log w = log p(x, z), and the "estimate" log p(x) + log
    # E_q[p(z|x)], here 0.9 nats too high (the posterior's density at its own samples)
    naive = torch.as_tensor(importance_sample(model, guide, x, num_samples=50, batch_size=25)["log_px"])
    assert (naive - exact).mean() > 0.5


def test_the_refinement_repairs_a_too_narrow_implicit_posterior():
    """AVB's implicit posteriors come out far narrower than the model's posterior. Here q has the exact posterior mean
    and a tenth of its standard deviations: the moments alone give a proposal whose estimate of log p(x) is too low
    (a pessimistic NLL, as importance sampling errs), and the per-point refinement on r's ELBO brings it to the exact
    value within 0.05 nats."""
    model = _linear_vae()
    guide = _exact_implicit_guide(model)
    with torch.no_grad():
        guide.sampler[0].weight[:, 3:] *= 0.1  # the noise's loadings: cov / 100
    x = torch.randn(50, 3) * 1.5
    exact = _exact_log_px(model, x)
    est = {}
    for steps in (0, 300):
        proposal = FittedGaussianProposal(guide, model, refine_steps=steps).prepare(x, 50)
        est[steps] = torch.as_tensor(importance_sample(model, proposal, x, num_samples=500, batch_size=50)["log_px"])
    assert (exact - est[0]).mean() > 0.5, float((exact - est[0]).mean())
    assert (est[300] - exact).abs().mean() < 0.05, float((est[300] - exact).abs().mean())
    summary = proposal.fit_summary()
    assert summary["elbo_refined"] > summary["elbo_moments"] + 1.0


def test_the_refinements_noise_based_log_r_is_the_gaussians_density():
    """During refinement log r comes from the draws' noise (no triangular solve to exploit); it is the density the
    proposal's MultivariateNormal gives the same draws."""
    model = _linear_vae()
    guide = _exact_implicit_guide(model)
    proposal = FittedGaussianProposal(guide, model, refine_steps=0)
    x = torch.randn(7, 3)
    fit = proposal.fit(x)
    values, log_r = proposal._draws(fit, 5)
    loc, tril = fit["z"]
    assert torch.allclose(log_r, dist.MultivariateNormal(loc, scale_tril=tril).log_prob(values["z"]), atol=1e-4)


# ------------------------------------------------------------------------------------------ training and resume

def _avb_config(epochs=2, checkpoint_every=0, guide="implicit"):
    cfg = TrainConfig(epochs=epochs, batch_size=128, seed=3, progress=False, checkpoint_every=checkpoint_every,
                      critic="mlp", lr=1e-3)
    return make_config("vae", guide, "avb", "digits", "dynamic", {"latent_dim": 2, "hidden": [16]}, cfg,
                       device="cpu")


def test_a_killed_avb_run_resumes_bit_for_bit_and_evaluates_with_the_fitted_proposal(tmp_path,
                                                                                      killed_run_resumes_bit_for_bit):
    """digits (1437 training points, batch 128: 12 steps an epoch), killed at step 18, checkpointed every 4 steps:
    the resumed run's model, guide, critic, both optimizers and every epoch's losses equal the uninterrupted run's."""
    full, _, a, _ = killed_run_resumes_bit_for_bit(lambda: _avb_config(checkpoint_every=4), tmp_path, saved_step=16)
    assert any(k.startswith("sampler.") for k in a["guide"])  # the implicit guide's noise network was trained
    config = json.load(open(os.path.join(full, rd.CONFIG)))
    assert config["critic_parameters"] == sum(v.numel() for v in a["critic"].values())
    assert a["critic"]["net.0.weight"].shape[1] == 64 + 2  # T sees [x, z]

    summary = evaluate_run(full, num_samples=64, progress=False, quality_samples=0, device="cpu")
    assert "proposal" in summary["protocol"] and "fitted" not in summary["protocol"]["estimator"]
    assert "128 draws of the implicit q(z|x)" in summary["protocol"]["proposal"]
    assert math.isfinite(summary["nll"]["mean"]) and summary["nll"]["mean"] <= summary["neg_elbo"]["mean"]
    assert summary["proposal_fit"]["points_refined"] == summary["protocol"]["num_points"]


def test_the_papers_settings_are_avbs_defaults(tmp_path):
    from inference.adversarial_training import AdversarialTrainer
    from zoo.cli.assemble import build_components

    config = _avb_config()
    config["train"]["lr"] = None
    comps = build_components(config, torch.device("cpu"))
    trainer = AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]),
                                 str(tmp_path), critic=comps.critic)
    assert trainer.optimizer.param_groups[0]["lr"] == 1e-4 and trainer.critic_optimizer.param_groups[0]["lr"] == 2e-4
    assert trainer.config.critic_steps == 1
    trained = {id(p) for p in trainer.params}
    assert all(id(p) in trained for p in comps.guide.parameters())  # the encoder is the generator's player
    # an explicit guide is allowed: T then estimates the log-ratio the guide could compute (documented in avb.py)
    assert build_components(_avb_config(guide="diagonal"), torch.device("cpu")).critic is not None


def test_both_avb_players_step_on_the_meta_device():
    """GPU readiness without a GPU: avb's critic step and generator step, each with gradients for its own player only
    (no host syncs, no fixed device: the posterior, the model's prior draws and T all follow the data's device)."""
    from zoo.cli.assemble import build_components

    pyro.enable_validation(False)
    comps = build_components(_avb_config(), torch.device("cpu"))
    model, guide, critic, objective = comps.model, comps.guide, comps.critic, comps.objective
    x = comps.data.train.x[:6].to("meta")
    for part in (model, guide, critic):
        part.to("meta")
    critic_loss, estimate = objective.critic_step(model, guide, critic, x)
    critic_loss.backward()
    assert critic_loss.device.type == "meta" and estimate.device.type == "meta"
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in critic.parameters())
    assert all(p.grad is None for p in list(model.parameters()) + list(guide.parameters()))
    for p in critic.parameters():
        p.requires_grad_(False)  # as the two-player loop freezes the critic for the generator's step
    objective.generator_step(model, guide, critic, x).backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in list(model.parameters())
               + list(guide.parameters()))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv, message", [
    (["--model", "vae", "--guide", "implicit", "--objective", "elbo"],
     "objective elbo needs the density log q(z|x), but guide implicit has none (z = f(x, eps), an implicit "
     "posterior); train it with --objective avb"),
    (["--model", "vae", "--guide", "implicit", "--objective", "iwae:5"], "objective iwae:5 needs the density log q"),
    (["--model", "vae", "--guide", "implicit", "--objective", "stl"], "objective stl needs the density log q"),
    (["--model", "vae", "--guide", "implicit", "--objective", "iwae-dreg:5"], "needs the density log q(z|x)"),
    (["--model", "svae", "--guide", "implicit", "--objective", "avb"], "has support sphere"),
    (["--model", "m2", "--guide", "semi-supervised", "--objective", "avb"], "objective 'avb' cannot do that"),
    (["--model", "svae", "--guide", "vmf", "--objective", "avb"], "objective avb needs real-valued latents"),
    (["--model", "gan", "--guide", "none", "--objective", "avb"], "model GAN is an implicit generator"),
    (["--model", "vae", "--guide", "implicit", "--objective", "avb", "--guide-option", "noise_dim=0"],
     "noise_dim must be a positive integer"),
    (["--model", "vae", "--guide", "implicit", "--objective", "avb", "--prior", "vamp:5"],
     "needs a guide whose q(z|x) has a density at any point"),
])
def test_bad_avb_input_is_one_line(tmp_path, capsys, argv, message):
    code = zoo_main(["train", "--data", "digits", "--binarize", "dynamic", "--epochs", "1", "--no-progress",
                     "--device", "cpu", "--out", str(tmp_path / "r")] + argv)
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
