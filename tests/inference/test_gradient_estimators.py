"""The better-gradient objectives: iwae-dreg:K (Tucker et al. 2019), stl (Roeder et al. 2017), jvi:K (Nowozin 2018).

Values against their references on the same draws, gradients against independent constructions (detached
distribution copies, a flow's own inverse) and in expectation against iwae:K / elbo, the zero-variance property at the
exact posterior, variance at K = 64 on a trained model, the jackknife against its O(K^2) definition and its bias
against the exact log p(x) of a linear-Gaussian VAE."""
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from guides.base import build_guide
from inference.dreg import IWAEDReG
from inference.importance import log_mean_exp, weight_terms
from inference.jackknife import JackknifeVI, jackknife_log_px, leave_one_out_logsumexp
from inference.objectives import OBJECTIVES, build_objective
from inference.stl import StickingTheLanding
from zoo.errors import ConfigError
from zoo.vae import VAE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIGMA = 0.5


def _vae(seed=0, data_dim=6, latent_dim=2, hidden=(8,), likelihood="bernoulli"):
    torch.manual_seed(seed)
    return VAE(data_dim, latent_dim=latent_dim, hidden=hidden, likelihood=likelihood, sigma=SIGMA)


def _x(n=5, d=6, seed=1):
    return torch.bernoulli(torch.rand(n, d, generator=torch.Generator().manual_seed(seed)))


def _grad(params, loss):
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs)])


def _loss_grads(objective, model, guide, x, seed):
    pyro.set_rng_seed(seed)
    loss = build_objective(objective).loss(model, guide, x)
    mp, gp = list(model.parameters()), list(guide.parameters())
    g = _grad(mp + gp, loss)
    n = sum(p.numel() for p in mp)
    return loss.detach(), g[:n], g[n:]


def test_registered_and_listed():
    assert {"iwae-dreg", "stl", "jvi"} <= set(OBJECTIVES.names())
    assert isinstance(build_objective("iwae-dreg:8"), IWAEDReG) and build_objective("iwae-dreg:8").name == "iwae-dreg:8"
    assert isinstance(build_objective("stl"), StickingTheLanding)
    assert isinstance(build_objective("jvi:3"), JackknifeVI)
    with pytest.raises(ConfigError, match="K >= 2"):
        build_objective("jvi:1")


@pytest.mark.parametrize("guide_spec", ["diagonal", "planar:2", "iaf:2"])
def test_values_equal_their_references_and_model_gradients_are_iwaes(guide_spec):
    """Same draws: iwae-dreg:K has the value of iwae:K and the same model-parameter gradient; stl has the value of the
    Monte Carlo ELBO (iwae:1 = Trace_ELBO on the same z) and its model gradient."""
    model = _vae()
    guide = build_guide(guide_spec, model)
    x = _x()
    for ours, ref in (("iwae-dreg:6", "iwae:6"), ("stl", "iwae:1")):
        v, gm, gg = _loss_grads(ours, model, guide, x, seed=3)
        v0, gm0, gg0 = _loss_grads(ref, model, guide, x, seed=3)
        torch.testing.assert_close(v, v0, rtol=1e-6, atol=1e-5)
        torch.testing.assert_close(gm, gm0, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(gg, gg0, rtol=1e-3, atol=1e-5)  # the guide's gradient is another estimator
    pyro.set_rng_seed(3)
    stl = build_objective("stl").loss(model, guide, x)
    pyro.set_rng_seed(3)
    trace_elbo = pyro.infer.Trace_ELBO().differentiable_loss(model, guide, x)
    torch.testing.assert_close(stl, trace_elbo, rtol=1e-6, atol=1e-5)


def _reference_path_loss(model, guide, x, K, detached_log_q, dreg, site="z"):
    """An independent construction of the STL / DReG surrogates from ``detached_log_q(site) -> log q_{stop phi}(z)``
    (gradient through z only): separate model terms for the model's and the guide's gradients."""
    with pyro.plate("particles", K, dim=-2):
        gtr = poutine.trace(guide).get_trace(x)
    z = gtr.nodes[site]["value"]
    log_q = gtr.nodes[site]["fn"].log_prob(z)
    log_q_path = detached_log_q(gtr.nodes[site])

    def log_p(value, params=None):
        def program(x):
            return model(x) if params is None else torch.func.functional_call(model, params, (x,))

        with pyro.plate("particles", K, dim=-2):
            mtr = poutine.trace(poutine.condition(program, data={site: value})).get_trace(x)
        return sum(s["fn"].log_prob(s["value"]) for n, s in mtr.nodes.items() if s["type"] == "sample")

    if not dreg:
        return -(log_p(z) - log_q_path).mean(0).sum()
    lw = (log_p(z) - log_q).detach()
    w = torch.softmax(lw, 0)
    theta_part = log_mean_exp(log_p(z.detach()) - log_q.detach(), 0)  # model parameters only
    frozen = {n: p.detach() for n, p in model.named_parameters()}
    phi_part = (w ** 2 * (log_p(z, frozen) - log_q_path)).sum(0)  # guide parameters only, through z
    return -(theta_part + phi_part - phi_part.detach()).sum()


def _diagonal_detached(site):
    base = site["fn"].base_dist
    return dist.Normal(base.loc.detach(), base.scale.detach()).to_event(1).log_prob(site["value"])


def _flow_detached_by_inverse(site):
    """log q_{stop phi}(z) of an invertible flow: its gradient at a fresh copy of z, computed by the flow's own
    inverse (no cache: a new tensor), as the gradient of a surrogate linear in z."""
    z = site["value"]
    z0 = z.detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(site["fn"].log_prob(z0).sum(), z0)[0]
    g = g.reshape(z.shape[:2] + (-1,))
    return site["fn"].log_prob(z).detach() + (g * (z - z.detach()).reshape(g.shape)).sum(-1)


@pytest.mark.parametrize("guide_spec,detached", [("diagonal", _diagonal_detached),
                                                 ("iaf:2", _flow_detached_by_inverse),
                                                 ("householder:2", _flow_detached_by_inverse)])
@pytest.mark.parametrize("objective", ["stl", "iwae-dreg:5"])
def test_gradients_equal_an_independent_construction(guide_spec, detached, objective):
    """Every parameter's gradient, same draws, against a construction that detaches the guide's distribution
    parameters by hand (diagonal) or scores z with the flow's own inverse at fixed parameters (iaf, householder:
    the zoo's code takes the base sample from the cache and never inverts, as it must for planar/radial/Sylvester)."""
    torch.set_default_dtype(torch.float64)
    try:
        model = _vae(latent_dim=3)
        guide = build_guide(guide_spec, model)
        x = _x().double()
        K = 1 if objective == "stl" else 5
        params = list(model.parameters()) + list(guide.parameters())
        pyro.set_rng_seed(4)
        ours = _grad(params, build_objective(objective).loss(model, guide, x))
        pyro.set_rng_seed(4)
        ref = _grad(params, _reference_path_loss(model, guide, x, K, detached, dreg=objective != "stl"))
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def _positive_scale(x, y=None):
    """A scalar positive latent per point (reshape and exp after the guide's flow: nested transformed distributions)."""
    m = pyro.param("m", lambda: torch.zeros(x.shape[-1]))
    with pyro.plate("data", x.shape[0]):
        tau = pyro.sample("tau", dist.Gamma(x.new_tensor(2.0), 2.0))
        pyro.sample("x", dist.Normal(m, tau.rsqrt().unsqueeze(-1)).to_event(1), obs=x)


@pytest.mark.filterwarnings("ignore:ConditionalAutoRegressiveNN input_dim")
@pytest.mark.parametrize("objective", ["stl", "iwae-dreg:5"])
def test_flow_onto_a_constrained_support_against_its_inverse(objective):
    """q(tau|x) = exp(reshape(iaf(base))): the base sample is found through every transform, the bijection's as well
    as the flow's, and the gradients equal those of scoring tau with the inverse at fixed parameters."""
    from zoo.model import TracedModel

    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        x = torch.randn(5, 3)
        model = TracedModel(_positive_scale, 3)
        model.prepare(x)
        guide = build_guide("iaf:2", model)
        K = 1 if objective == "stl" else 5
        params = list(model.parameters()) + list(guide.parameters())
        pyro.set_rng_seed(4)
        ours = _grad(params, build_objective(objective).loss(model, guide, x))
        pyro.set_rng_seed(4)
        ref = _grad(params, _reference_path_loss(model, guide, x, K, _flow_detached_by_inverse,
                                                 dreg=objective != "stl", site="tau"))
        torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)
    finally:
        torch.set_default_dtype(torch.float32)


def _draws(objective, model, guide, x, reps, seed=0):
    """(reps, P) guide and model gradients, each the mean over the rows of x (independent draws)."""
    out_g, out_m = [], []
    for r in range(reps):
        _, gm, gg = _loss_grads(objective, model, guide, x, seed=seed * 100003 + r)
        out_g.append(gg / x.shape[0])
        out_m.append(gm / x.shape[0])
    return torch.stack(out_g), torch.stack(out_m)


def _z_scores(a, b):
    se = (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()
    keep = se > 1e-7
    return ((a.mean(0) - b.mean(0))[keep] / se[keep]), se[keep], a.mean(0)[keep]


@pytest.mark.parametrize("guide_spec,ours,ref", [("diagonal", "iwae-dreg:8", "iwae:8"),
                                                 ("planar:2", "iwae-dreg:8", "iwae:8"),
                                                 ("diagonal", "stl", "elbo"),
                                                 ("planar:2", "stl", "iwae:1")])
def test_unbiased_for_the_same_gradient(guide_spec, ours, ref):
    """Mean over many draws of the guide's (and model's) gradient equals the reference estimator's, within standard
    errors: every coordinate within 4.5 se, and the z-scores' mean square near 1 (a bias of a fraction of the
    gradient would show: the test asserts the standard errors are small beside the gradient itself)."""
    model = _vae()
    guide = build_guide(guide_spec, model)
    x = _x(n=4).repeat(64, 1)
    a_g, a_m = _draws(ours, model, guide, x, reps=30, seed=1)
    b_g, b_m = _draws(ref, model, guide, x, reps=30, seed=2)
    for a, b in ((a_g, b_g), (a_m, b_m)):
        z, se, mean = _z_scores(a, b)
        assert z.abs().max() < 4.5, (z.abs().max(), ours, ref)
        assert (z ** 2).mean() < 2.0
        assert se.median() < 0.2 * mean.abs().median() + 1e-3  # the test has the power to see a bias


def test_hierarchical_guide_keeps_the_parents_path():
    """hvae's guide q(z2|x) q(z1|x,z2): only phi is held fixed, not z2 inside q(z1|z2) (the guide is run again on the
    detached samples). DReG stays unbiased for IWAE's gradient; holding q(z1|z2)'s parameters fixed as they are
    (z2 too) would not be: the dropped term z2 -> theta_1 has mean zero under q, not under the weights w~^2."""
    from zoo.hvae import HVAE

    torch.manual_seed(0)
    model = HVAE(6, latent_dim=2, latent_dim1=2, hidden=(8,))
    guide = build_guide("diagonal", model)
    x = _x(n=4).repeat(48, 1)
    a_g, _ = _draws("iwae-dreg:8", model, guide, x, reps=30, seed=3)
    b_g, _ = _draws("iwae:8", model, guide, x, reps=30, seed=4)
    z, _, _ = _z_scores(a_g, b_g)
    assert z.abs().max() < 4.5 and (z ** 2).mean() < 2.0


def _linear_gaussian(seed=0, data_dim=4):
    """A linear-Gaussian VAE whose decoder has orthogonal columns: the exact posterior is a diagonal Gaussian, linear
    in x, which the diagonal guide (no hidden layer) represents exactly."""
    model = _vae(seed, data_dim=data_dim, latent_dim=2, hidden=(), likelihood="gaussian")
    g = torch.Generator().manual_seed(seed)
    w = torch.linalg.qr(torch.randn(data_dim, 2, generator=g))[0] * torch.tensor([1.5, 0.7])
    with torch.no_grad():
        model.decoder[0].weight.copy_(w)
        model.decoder[0].bias.copy_(torch.randn(data_dim, generator=g))
    return model


def _set_exact_posterior(model, guide):
    w, b = model.decoder[0].weight.detach(), model.decoder[0].bias.detach()
    cov = torch.linalg.inv(torch.eye(2) + w.T @ w / SIGMA ** 2)  # diagonal: orthogonal columns
    head = guide.gaussian.heads["z"]
    with torch.no_grad():
        a = cov @ w.T / SIGMA ** 2
        head.weight.zero_()
        head.weight[:2] = a
        head.bias[:2] = -a @ b
        s = cov.diagonal().sqrt() - 1e-5
        head.bias[2:] = s + torch.log(-torch.expm1(-s))  # softplus^-1


def _exact_log_px(model, x):
    w, b = model.decoder[0].weight.detach().double(), model.decoder[0].bias.detach().double()
    cov = w @ w.T + SIGMA ** 2 * torch.eye(w.shape[0], dtype=torch.float64)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x.double())


def test_sticking_the_landing_at_the_exact_posterior():
    """q = p(z|x): log p(x, z) - log q(z|x) = log p(x) for every z, so the STL and DReG guide gradients are zero on
    every draw (Roeder et al.'s point), while the ordinary reparameterisation gradients are not."""
    model = _linear_gaussian()
    guide = build_guide("diagonal", model)
    _set_exact_posterior(model, guide)
    x = model.decoder[0].bias.detach() + torch.randn(8, 4, generator=torch.Generator().manual_seed(2))
    pyro.set_rng_seed(0)
    terms = weight_terms(model, guide, x, None, 16)
    torch.testing.assert_close(terms.log_w, _exact_log_px(model, x).float().expand(16, -1), rtol=0, atol=1e-4)
    for ours, ref in (("stl", "iwae:1"), ("iwae-dreg:16", "iwae:16")):
        _, _, gg = _loss_grads(ours, model, guide, x, seed=5)
        _, _, gg0 = _loss_grads(ref, model, guide, x, seed=5)
        assert gg.abs().max() < 1e-4, ours
        assert gg0.abs().max() > 1e-2, ref


@pytest.fixture(scope="module")
def briefly_trained():
    """A small Bernoulli VAE trained 100 steps with iwae:8 on random binary patterns."""
    model = _vae(seed=0, data_dim=12, latent_dim=2, hidden=(16,))
    guide = build_guide("diagonal", model)
    data = torch.bernoulli(torch.rand(4, 12, generator=torch.Generator().manual_seed(0)).round().clamp(0.1, 0.9)
                           .repeat(16, 1))
    opt = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=1e-2)
    pyro.set_rng_seed(0)
    objective = build_objective("iwae:8")
    for _ in range(100):
        opt.zero_grad()
        (objective.loss(model, guide, data) / data.shape[0]).backward()
        opt.step()
    return model, guide, data[:4]


def test_dreg_guide_gradient_has_lower_variance_at_k64(briefly_trained):
    """On a trained model at K = 64, DReG's guide-gradient variance (summed over the guide's parameters) is below
    IWAE's; the model's gradient is the same estimator (equal variances up to noise)."""
    model, guide, x = briefly_trained
    xs = x[:1]
    a_g, _ = _draws("iwae-dreg:64", model, guide, xs, reps=40, seed=7)
    b_g, _ = _draws("iwae:64", model, guide, xs, reps=40, seed=7)
    ratio = (a_g.var(0).sum() / b_g.var(0).sum()).item()
    print(f"DReG / IWAE guide-gradient variance at K=64: {ratio:.3f}")
    assert ratio < 0.8, ratio


def test_jackknife_closed_form_on_a_hand_made_tensor():
    g = torch.Generator().manual_seed(0)
    log_w = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3
    log_w[:, 0] = torch.tensor([50.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)  # one weight dominates its column
    K = log_w.shape[0]
    loo = torch.stack([torch.logsumexp(torch.cat([log_w[:i], log_w[i + 1:]]), 0) for i in range(K)])
    torch.testing.assert_close(leave_one_out_logsumexp(log_w), loo, rtol=0, atol=1e-10)
    l_k = torch.logsumexp(log_w, 0) - math.log(K)
    expected = K * l_k - (K - 1) * (loo - math.log(K - 1)).mean(0)
    torch.testing.assert_close(jackknife_log_px(log_w), expected, rtol=0, atol=1e-10)
    # equal weights: every estimate is log w; K = 2 by hand: 2 log((w1 + w2)/2) - (log w1 + log w2)/2
    torch.testing.assert_close(jackknife_log_px(torch.full((4, 3), -2.0)), torch.full((3,), -2.0))
    a, b = torch.tensor(-1.0), torch.tensor(-3.0)
    hand = 2 * torch.log((a.exp() + b.exp()) / 2) - (a + b) / 2
    torch.testing.assert_close(jackknife_log_px(torch.stack([a, b]).reshape(2, 1)), hand.reshape(1))
    with pytest.raises(ConfigError, match="at least 2"):
        jackknife_log_px(torch.zeros(1, 3))
    pyro.set_rng_seed(0)
    model = _vae()
    guide = build_guide("diagonal", model)
    pyro.set_rng_seed(1)
    loss = build_objective("jvi:5").loss(model, guide, _x())
    pyro.set_rng_seed(1)
    lw = weight_terms(model, guide, _x(), None, 5).log_w
    torch.testing.assert_close(loss, -jackknife_log_px(lw).sum())


def test_jackknife_is_less_biased_than_iwae_at_small_k():
    """Linear-Gaussian model, guide off the posterior (scales doubled): averaged over many draws, |E L^J_K - log p(x)|
    < |E L_K - log p(x)| for K = 2, 4, 8."""
    model = _linear_gaussian(seed=1)
    guide = build_guide("diagonal", model)
    _set_exact_posterior(model, guide)
    with torch.no_grad():
        guide.gaussian.heads["z"].bias[2:] += 0.8  # a wider q: log-weights with a spread
        guide.gaussian.heads["z"].bias[:2] += 0.3
    x = model.decoder[0].bias.detach() + torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    exact = _exact_log_px(model, x)
    reps = 4000
    pyro.set_rng_seed(0)
    with torch.no_grad():
        lw = weight_terms(model, guide, x.repeat(reps, 1), None, 8).log_w.double()  # (8, reps * 3)
    for k in (2, 4, 8):
        part = lw[:k]
        iwae = (log_mean_exp(part, 0)).reshape(reps, -1).mean(0)
        jvi = jackknife_log_px(part).reshape(reps, -1).mean(0)
        bias_iwae, bias_jvi = (iwae - exact).abs(), (jvi - exact).abs()
        assert (bias_jvi < bias_iwae).all(), (k, bias_iwae, bias_jvi)
        assert (bias_iwae > 0.02).all()  # the comparison is not between two noise levels


def test_guide_that_is_not_reparameterised_is_refused():
    import guides.semi_supervised  # noqa: F401  (registers the guide)
    from zoo.m2 import M2

    torch.manual_seed(0)
    model = M2(12, num_classes=3, latent_dim=2, hidden=(8,))
    guide = build_guide("semi-supervised", model)
    x = _x(n=4, d=12)
    for spec in ("stl", "iwae-dreg:4"):
        with pytest.raises(ConfigError) as e:
            build_objective(spec).loss(model, guide, x)
        msg = str(e.value)
        assert "\n" not in msg and "reparameterised" in msg and "'y'" in msg and "iwae" in msg


def test_trains_from_the_cli(tmp_path, capsys):
    """zoo train with the path-gradient objectives and a flow guide (jvi:K's loss is iwae:K's weights, trained alike;
    tests/e2e/test_cli.py trains only elbo and iwae of the registry)."""
    from zoo.cli.main import main

    for objective in ("iwae-dreg:3", "stl"):
        out = str(tmp_path / objective.replace(":", ""))
        code = main(["train", "--data", "digits", "--guide", "planar:2", "--objective", objective, "--out", out,
                     "--epochs", "1", "--batch-size", "64", "--latent-dim", "2", "--hidden", "16", "--no-progress"])
        assert code == 0, capsys.readouterr().err
