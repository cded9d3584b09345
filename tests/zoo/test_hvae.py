"""The two-layer hierarchical VAE: structure, guide order, the prior on the top layer, and the estimators against the
exact log-likelihood of a linear-Gaussian hierarchy.

Linear hierarchy (``hidden=()``): z2 ~ N(0, I), z1 | z2 ~ N(A z2 + c, diag s^2), x | z1, z2 ~ N(W1 z1 + W2 z2 + b,
sigma^2 I), so x = (W1 A + W2) z2 + W1 c + b + W1 s e1 + sigma e and

    x ~ N(W1 c + b,  M M^T + W1 diag(s^2) W1^T + sigma^2 I),   M = W1 A + W2.
"""
import pyro
import pyro.poutine as poutine
import pytest
import torch

from guides.base import build_guide
from inference.evaluation import importance_sample
from inference.objectives import build_objective
from inference.training import TrainConfig, Trainer
from zoo.data.base import Dataset, Split
from zoo.hvae import HVAE

SIGMA = 0.5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _linear_parts(model):
    d1 = model.latent_dim1
    w = model.decoder[0].weight.detach().double()
    b = model.decoder[0].bias.detach().double()
    a = model.p_z1.net[0].weight.detach().double()
    c = model.p_z1.net[0].bias.detach().double()
    s = (torch.nn.functional.softplus(model.p_z1.raw_scale.detach()) + 1e-5).double()
    return w[:, :d1], w[:, d1:], b, a, c, s


def _gaussian_marginal(w1, w2, b, a, c, s, sigma2):
    m = w1 @ a + w2
    cov = m @ m.T + w1 @ torch.diag(s ** 2) @ w1.T + torch.diag(sigma2)
    return torch.distributions.MultivariateNormal(w1 @ c + b, covariance_matrix=cov)


def _exact_marginal(model):
    sigma2 = model.likelihood.log_sigma.detach().double().exp() ** 2
    return _gaussian_marginal(*_linear_parts(model), sigma2)


def _hierarchical_data(n=600, data_dim=6, d2=2, d1=2, seed=0):
    """Data from a linear hierarchy, and the exact marginal of the generating parameters."""
    g = torch.Generator().manual_seed(seed)
    a, c = torch.randn(d1, d2, generator=g), 0.5 * torch.randn(d1, generator=g)
    w1, w2 = torch.randn(data_dim, d1, generator=g), torch.randn(data_dim, d2, generator=g)
    b, s = torch.randn(data_dim, generator=g), torch.full((d1,), 0.7)
    z2 = torch.randn(n, d2, generator=g)
    z1 = z2 @ a.T + c + s * torch.randn(n, d1, generator=g)
    x = z1 @ w1.T + z2 @ w2.T + b + SIGMA * torch.randn(n, data_dim, generator=g)
    data = Dataset("synthetic-hierarchy", Split(x[:400]), Split(x[400:500]), Split(x[500:]), binarize="none")
    true = _gaussian_marginal(*(t.double() for t in (w1, w2, b, a, c, s)), torch.full((data_dim,), SIGMA ** 2).double())
    return data, true


@pytest.fixture(scope="module")
def trained_linear_hierarchy(tmp_path_factory):
    pyro.set_rng_seed(0)
    data, true = _hierarchical_data()
    model = HVAE(data.dim, latent_dim=2, latent_dim1=2, hidden=(), likelihood="gaussian", sigma=SIGMA)
    guide = build_guide("diagonal", model)
    with torch.no_grad():
        initial = _exact_marginal(model).log_prob(data.test.x.double()).mean().item()
    cfg = TrainConfig(epochs=30, batch_size=50, lr=1e-2, seed=0, progress=False)
    Trainer(model, guide, build_objective("elbo"), data, cfg, str(tmp_path_factory.mktemp("hier")), "hvae").fit()
    model.eval(), guide.eval()
    return model, guide, data, (true, initial)


def test_the_derived_marginal_is_the_model_s_own(trained_linear_hierarchy):
    """The covariance formula against ancestral samples of the (trained) model itself."""
    model, _, data, _ = trained_linear_hierarchy
    torch.manual_seed(0)
    x = model.sample(40000, data.test.x, mean=False).double()
    exact = _exact_marginal(model)
    assert torch.allclose(x.mean(0), exact.mean, atol=0.05)
    assert torch.allclose(torch.cov(x.T), exact.covariance_matrix, atol=0.05 * exact.covariance_matrix.abs().max())


def test_importance_sampled_log_likelihood_of_a_hierarchy_matches_the_exact_marginal(trained_linear_hierarchy):
    model, guide, data, (true, initial) = trained_linear_hierarchy
    x = data.test.x
    exact = _exact_marginal(model).log_prob(x.double())
    torch.manual_seed(1)
    est = importance_sample(model, guide, x, num_samples=5000, batch_size=50)
    log_px = torch.as_tensor(est["log_px"])
    print(f"mean |IS - exact| = {(log_px - exact).abs().mean():.4f}, exact {exact.mean():.3f}, "
          f"ELBO {torch.as_tensor(est['elbo']).mean():.3f}")
    assert (log_px - exact).abs().mean() < 0.05
    # the ELBO is below the exact log-likelihood (the guide's q(z2|x) is diagonal, the true posterior is not)
    assert torch.as_tensor(est["elbo"]).mean() < exact.mean() - 1e-3
    # the estimate is checked on a trained model, not on the initial one: brief training moved it most of the way from
    # its initial likelihood to that of the generating parameters (30 epochs: ~1.3 nats short; 100 epochs: 0.05)
    target = true.log_prob(x.double()).mean().item()
    assert exact.mean() - initial > 0.7 * (target - initial)


def test_sites_are_declared_top_down_and_the_guide_conditions_z1_on_z2():
    torch.manual_seed(0)
    model = HVAE(12, latent_dim=3, latent_dim1=4, hidden=(8,))
    sites = model.latent_sites()
    assert [(s.name, s.dim, s.depends_on) for s in sites] == [("z2", 3, ()), ("z1", 4, ("z2",))]
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(5, 12))
    tr = poutine.trace(guide).get_trace(x)
    assert [n for n, s in tr.nodes.items() if s["type"] == "sample" and n != "data"] == ["z2", "z1"]
    assert tr.nodes["z2"]["value"].shape == (5, 3) and tr.nodes["z1"]["value"].shape == (5, 4)
    # q(z1 | x, z2) changes with z2
    locs = []
    for z2 in (torch.zeros(5, 3), torch.ones(5, 3)):
        t = poutine.trace(poutine.condition(guide, data={"z2": z2})).get_trace(x)
        locs.append(t.nodes["z1"]["fn"].base_dist.loc)
    assert not torch.allclose(locs[0], locs[1])
    # the model: p(z1 | z2) depends on z2, and p(x | z1, z2) on both
    mt = poutine.trace(poutine.replay(model, trace=tr)).get_trace(x)
    assert [n for n, s in mt.nodes.items() if s["type"] == "sample" and n != "data"] == ["z2", "z1", "x"]
    assert mt.nodes["z1"]["fn"].event_shape == (4,)


def test_the_prior_is_on_the_top_layer_and_the_vamp_prior_mixes_q_z2():
    torch.manual_seed(0)
    model = HVAE(12, latent_dim=3, latent_dim1=4, hidden=(8,), prior="vamp:5")
    guide = build_guide("diagonal", model)
    assert model.prior.guide is guide and model.prior.__dict__["_guide_site"].name == "z2"
    u = model.prior.pseudo_inputs()
    loc, raw = guide.gaussian.heads["z2"](guide.encoder(u)).chunk(2, -1)
    q = torch.distributions.Normal(loc, torch.nn.functional.softplus(raw) + 1e-5)
    z2 = torch.randn(2, 6, 3)
    explicit = torch.logsumexp(q.log_prob(z2[..., None, :]).sum(-1), -1) - torch.log(torch.tensor(5.0))
    x = torch.bernoulli(torch.rand(6, 12))
    tr = poutine.trace(poutine.condition(model, data={"z2": z2[0]})).get_trace(x)
    assert torch.allclose(tr.nodes["z2"]["fn"].log_prob(z2[0]), explicit[0], atol=1e-4)
    assert tr.nodes["z1"]["fn"].event_shape == (4,)


@pytest.mark.parametrize("objective", ["elbo", "iwae:4"])
def test_hvae_trains_with_every_objective_and_moves_every_parameter(objective):
    torch.manual_seed(0)
    model = HVAE(12, latent_dim=3, latent_dim1=2, hidden=(8,), prior="vamp:4")
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(9, 12))
    build_objective(objective).loss(model, guide, x).backward()
    for name, p in list(model.named_parameters()) + list(guide.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
