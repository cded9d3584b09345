"""Priors: each against an independent computation, with a particle dimension in front; the VampPrior's binding to the
guide (no duplicated parameters, guide swapping, refusal of guides without a density); every model x prior from the CLI.
"""
import inspect
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from guides.base import GUIDES, AmortizedGuide, bind_model_to_guide, build_guide
from inference.importance import weight_terms
from inference.objectives import build_objective
from zoo.cli.assemble import register_all
from zoo.errors import ConfigError
from zoo.learned_priors import DiagonalNormalMixture, FlowPrior, VampPrior
from zoo.model import MODELS
from zoo.priors import PRIORS, build_prior
from zoo.vae import VAE

register_all()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(entry, k=3):
    return f"{entry.name}:{k}" if entry.arg else entry.name


PRIOR_SPECS = [_spec(e) for e in PRIORS]


def _model_with_guide(prior, data_dim=12, latent_dim=3, guide="diagonal"):
    model = VAE(data_dim, latent_dim=latent_dim, hidden=(8,), prior=prior)
    return model, build_guide(guide, model)


def test_prior_registry_holds_the_issue_priors():
    assert {"standard", "mog", "vamp", "flow"} <= set(PRIORS.names())


# ------------------------------------------------------------------------------------------------ every prior


@pytest.mark.parametrize("spec", PRIOR_SPECS)
def test_prior_shapes_and_particle_dimension(spec):
    """batch (B,), event (dim,); log p(z) of z (K, B, dim) is (K, B) and equals the per-particle values."""
    torch.manual_seed(0)
    model, guide = _model_with_guide(spec)
    B, K, D = 5, 4, 3
    x = torch.bernoulli(torch.rand(B, 12))
    p = model.prior(B, x)
    assert p.batch_shape == (B,) and p.event_shape == (D,)
    z = torch.randn(K, B, D)
    lp = p.log_prob(z)
    assert lp.shape == (K, B) and bool(torch.isfinite(lp).all())
    per_particle = torch.stack([p.log_prob(z[k]) for k in range(K)])
    assert torch.allclose(lp, per_particle, atol=1e-5)
    # the same under Pyro's particle plate (the distribution is expanded to (K, B) by the plates)
    terms = weight_terms(model, guide, x, None, K)
    assert terms.log_prior.shape == (K, B) and bool(torch.isfinite(terms.log_w).all())
    # samples have the prior's shape and a finite density
    s = p.sample()
    assert s.shape == (B, D) and bool(torch.isfinite(p.log_prob(s)).all())
    assert model.sample(6, x).shape == (6, 12)


@pytest.mark.parametrize("spec", PRIOR_SPECS)
@pytest.mark.parametrize("objective", ["elbo", "iwae:3"])
def test_prior_parameters_get_gradients(spec, objective):
    torch.manual_seed(0)
    model, guide = _model_with_guide(spec)
    x = torch.bernoulli(torch.rand(6, 12))
    build_objective(objective).loss(model, guide, x).backward()
    for name, p in model.prior.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert p.grad.abs().sum() > 0, name


def test_priors_that_learn_integrate_to_one():
    """A crude normalisation check on a 2-D grid for the learned densities (mog, vamp, flow)."""
    torch.manual_seed(0)
    g = torch.linspace(-8, 8, 321)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    cell = (g[1] - g[0]) ** 2
    for spec in ("mog:3", "vamp:4", "flow:2"):
        model, guide = _model_with_guide(spec, latent_dim=2)
        with torch.no_grad():
            mass = (model.prior(1, zz).log_prob(zz[:, None, :]).exp().sum() * cell).item()
        assert mass == pytest.approx(1.0, abs=0.02), spec


# ------------------------------------------------------------------------------------------------ mog


def test_mog_with_one_zero_mean_unit_component_is_the_standard_prior():
    prior = build_prior("mog:1", 4)
    with torch.no_grad():
        prior.loc.zero_()
        prior.log_scale.zero_()
    standard = build_prior("standard", 4)
    z = torch.randn(3, 5, 4) * 2
    like = torch.zeros(5, 1)
    assert torch.allclose(prior(5, like).log_prob(z), standard(5, like).log_prob(z), atol=1e-5)


def test_mog_equals_the_explicit_mixture():
    torch.manual_seed(1)
    prior = build_prior("mog:4", 3)
    with torch.no_grad():
        prior.logits.normal_()
        prior.log_scale.normal_(0, 0.3)
    z = torch.randn(2, 5, 3)
    w = torch.softmax(prior.logits, 0)
    comps = torch.stack([torch.distributions.Normal(prior.loc[k], prior.log_scale[k].exp()).log_prob(z).sum(-1)
                         for k in range(4)], -1)
    explicit = torch.logsumexp(comps + w.log(), -1)
    assert torch.allclose(prior(5, z).log_prob(z), explicit, atol=1e-5)


def test_diagonal_normal_mixture_is_exact_in_float64_and_close_in_float32():
    torch.manual_seed(2)
    K, D = 7, 5
    loc, scale, logits = torch.randn(K, D) * 2, torch.rand(K, D) * 0.5 + 0.05, torch.randn(K)
    z = torch.randn(3, 4, D) * 3
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-3)):
        m = DiagonalNormalMixture(logits.to(dtype), loc.to(dtype), scale.to(dtype))
        explicit = torch.logsumexp(torch.distributions.Normal(loc.double(), scale.double()).log_prob(
            z.double()[..., None, :]).sum(-1) + torch.log_softmax(logits.double(), 0), -1)
        assert torch.allclose(m.log_prob(z.to(dtype)).double(), explicit, atol=tol, rtol=0), dtype
    m = DiagonalNormalMixture(logits, loc, scale).expand([4])
    s = m.sample((20000,))
    assert s.shape == (20000, 4, D)
    assert torch.allclose(s.mean((0, 1)), m.mean[0], atol=0.05)
    assert torch.allclose(s.var((0, 1)), m.variance[0], rtol=0.05)


# ------------------------------------------------------------------------------------------------ vamp


def test_vamp_log_density_is_the_mixture_of_the_encoders_gaussians_at_the_pseudo_inputs():
    torch.manual_seed(3)
    K = 7
    model, guide = _model_with_guide(f"vamp:{K}", latent_dim=3)
    with torch.no_grad():
        model.prior.pseudo_inputs_raw.uniform_(-0.3, 1.3)  # some outside [0, 1]: the hardtanh must clip them
    x = torch.bernoulli(torch.rand(5, 12))
    z = torch.randn(4, 5, 3)
    # by hand: u_k = hardtanh(w_k), q(z|u_k) = N(mu(h(u_k)), sigma(h(u_k))^2), p(z) = 1/K sum_k q(z|u_k)
    u = torch.nn.functional.hardtanh(model.prior.pseudo_inputs_raw, 0.0, 1.0)
    assert u.min() == 0.0 and u.max() == 1.0
    head = guide.gaussian.heads["z"]
    loc, raw = head(guide.encoder(u)).chunk(2, -1)
    scale = torch.nn.functional.softplus(raw) + 1e-5
    comps = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    explicit = torch.logsumexp(comps.log_prob(z[..., None, :]), -1) - math.log(K)
    assert torch.allclose(model.prior(5, x).log_prob(z), explicit, atol=1e-4)
    # and that is what the model's z site scores
    trace = pyro.poutine.trace(pyro.poutine.condition(model, data={"z": z[0]})).get_trace(x)
    assert torch.allclose(trace.nodes["z"]["fn"].log_prob(z[0]), explicit[0], atol=1e-4)


def test_vamp_parameters_are_stored_once_and_the_encoder_learns_from_the_prior_term():
    model, guide = _model_with_guide("vamp:5")
    keys = set(model.state_dict())
    assert {"prior.pseudo_inputs_raw", "prior.clip"} <= keys
    assert not any("encoder" in k or "heads" in k for k in keys)  # the guide's encoder is not part of the model
    shared = {id(p) for p in model.parameters()} & {id(p) for p in guide.parameters()}
    assert not shared
    # log p(z) alone (no likelihood, no q) moves the encoder: the prior uses the guide's q(z|.)
    z = torch.randn(5, 3)
    model.prior(5, z).log_prob(z).sum().backward()
    assert guide.encoder[0].weight.grad.abs().sum() > 0 and model.prior.pseudo_inputs_raw.grad.abs().sum() > 0


def test_vamp_rebinds_to_the_last_guide_built_and_refuses_an_unbound_use():
    model, first = _model_with_guide("vamp:5")
    assert model.prior.guide is first
    second = build_guide("diagonal", model)
    assert model.prior.guide is second
    z = torch.randn(4, 3)
    with torch.no_grad():
        second.encoder[0].weight.mul_(3.0)
        u = model.prior.pseudo_inputs()
        loc, raw = second.gaussian.heads["z"](second.encoder(u)).chunk(2, -1)
        expect = torch.logsumexp(torch.distributions.Normal(loc, torch.nn.functional.softplus(raw) + 1e-5)
                                 .log_prob(z[:, None, :]).sum(-1), -1) - math.log(5)
        assert torch.allclose(model.prior(4, z).log_prob(z), expect, atol=1e-4)
    unbound = VampPrior(5, 3, 12)
    with pytest.raises(ConfigError, match="not bound to a guide"):
        unbound(4, z)


class _PlanarGuide(AmortizedGuide):
    """A guide whose q has no density at arbitrary points (Pyro's planar flow inverts only what it produced)."""

    def __init__(self, model):
        super().__init__(model)
        self.heads = torch.nn.ModuleDict({s.name: torch.nn.Linear(self.input_dims[s.name], 2 * s.dim)
                                          for s in self.sites})
        self.flows = torch.nn.ModuleDict({s.name: dist.transforms.conditional_planar(s.dim, self.input_dims[s.name])
                                          for s in self.sites})

    def site_distribution(self, site, context):
        loc, raw = self.heads[site.name](context).chunk(2, -1)
        base = dist.Normal(loc, torch.nn.functional.softplus(raw) + 1e-5).to_event(1)
        return dist.TransformedDistribution(base, [self.flows[site.name].condition(context)])


def test_vamp_refuses_a_guide_without_a_density_at_arbitrary_points():
    model = VAE(12, latent_dim=3, hidden=(8,), prior="vamp:5")
    guide = _PlanarGuide(model)
    with pytest.raises(ConfigError, match="density at any point") as info:
        bind_model_to_guide(model, guide)
    assert len(str(info.value).splitlines()) == 1
    assert model.prior.guide is None  # a refused guide is not kept


@pytest.mark.parametrize("guide_spec", [_spec(e, 2) for e in GUIDES])
def test_vamp_with_every_registered_guide_works_or_is_refused_up_front(guide_spec):
    model = VAE(12, latent_dim=3, hidden=(8,), prior="vamp:4")
    try:
        guide = build_guide(guide_spec, model)
    except ConfigError as e:
        assert len(str(e).splitlines()) == 1
        return
    x = torch.bernoulli(torch.rand(5, 12))
    terms = weight_terms(model, guide, x, None, 3)
    assert terms.log_prior.shape == (3, 5) and bool(torch.isfinite(terms.log_w).all())


def test_vamp_pseudo_inputs_start_at_training_points_and_are_clipped_to_the_data_range():
    prior = VampPrior(6, 3, 4)
    x = torch.rand(50, 4)
    torch.manual_seed(0)
    prior.init_from_data(x)
    u = prior.pseudo_inputs()
    assert all(any(torch.equal(row, xi) for xi in x) for row in u)  # each pseudo-input is a training point
    assert prior.clip.tolist() == [0.0, 1.0]
    wide = VampPrior(60, 3, 4)  # more components than points: drawn with replacement; data beyond [0, 1]
    wide.init_from_data(3 * x - 1)
    assert wide.clip.tolist() == pytest.approx([float((3 * x - 1).min()), float((3 * x - 1).max())])


# ------------------------------------------------------------------------------------------------ flow


def test_flow_prior_matches_an_independent_change_of_variables():
    """log p(z) = log N(f(z); 0, I) + log |det df/dz|, the Jacobian from autograd, in float64, parameters moved."""
    torch.manual_seed(4)
    D = 4
    prior = FlowPrior(3, D).double()
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z = torch.randn(2, 3, D, dtype=torch.float64)
    ours = prior(3, z).log_prob(z)
    base = torch.distributions.Normal(torch.zeros(D, dtype=torch.float64), 1.0)
    expect = torch.empty(2, 3, dtype=torch.float64)
    for i in range(2):
        for j in range(3):
            zij = z[i, j]
            jac = torch.autograd.functional.jacobian(prior.transform, zij)
            expect[i, j] = base.log_prob(prior.transform(zij)).sum() + torch.linalg.slogdet(jac)[1]
    assert torch.allclose(ours, expect, atol=1e-8)
    # the autoregressive structure: the Jacobian is triangular up to the variables' order
    jac = torch.autograd.functional.jacobian(prior.layers[0], z[0, 0])
    perm = prior.layers[0].arn.permutation
    assert torch.allclose(jac[perm][:, perm].triu(1), torch.zeros(D, D, dtype=torch.float64))


def test_flow_prior_samples_invert_the_density_direction():
    torch.manual_seed(5)
    prior = FlowPrior(2, 3)
    p = prior(7, torch.zeros(()))
    s = p.sample()
    u = prior.transform(s)
    # f(sample) is the base draw: standard normal statistics over many draws
    many = prior(4000, torch.zeros(())).sample()
    fu = prior.transform(many)
    assert u.shape == (7, 3)
    assert fu.mean(0).abs().max() < 0.1 and (fu.std(0) - 1).abs().max() < 0.1


@pytest.mark.parametrize("spec", ["mog:x", "vamp:1.5", "flow:y"])
def test_a_count_that_is_not_a_positive_integer_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="positive integer"):
        build_prior(spec, 3, data_dim=12)


def test_flow_prior_needs_two_dimensions():
    with pytest.raises(ConfigError, match="at least 2"):
        build_prior("flow:2", 1)


# ---------------------------------------------------------------------------------------- CLI, every model x prior


FAST = ["--epochs", "1", "--batch-size", "128", "--latent-dim", "2", "--hidden", "16", "--no-progress",
        "--device", "cpu"]


def _takes_prior(model_name):
    return "prior" in inspect.signature(MODELS.entry(model_name).factory).parameters


@pytest.mark.parametrize("prior", PRIOR_SPECS)
@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_prior_combination_trains_or_is_refused_in_one_line(model, prior, tmp_path, capsys, monkeypatch):
    """Each model x prior trains 1 epoch on digits from the CLI, or is refused before training starts with one line
    (exit 2): a model without a swappable prior refuses every --prior but the default; vae and hvae take them all."""
    from inference.training import Trainer
    from zoo.cli.main import main

    if not _takes_prior(model) and prior == "standard":
        pytest.skip(f"{model} has no prior to swap (trained by its own tests)")
    started = []
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: started.append(1) or fit(self, *a, **k))
    code = main(["train", "--model", model, "--prior", prior, "--data", "digits", "--out", str(tmp_path / "r")] + FAST)
    _, err = capsys.readouterr()
    if not _takes_prior(model):
        assert code == 2 and "no swappable prior" in err and len(err.strip().splitlines()) == 1, err
        return
    if model in ("vae", "hvae"):
        assert code == 0, err
    if code != 0:  # refused: one line, exit 2, before the first training step
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("zoo: error:"), err
        assert not started, f"refused after training had started: {err}"


def test_vamp_run_evaluates_and_samples_after_reloading(tmp_path, capsys):
    """A VampPrior run reloads from its directory (guide rebuilt, prior re-bound, weights loaded) and evaluates."""
    from zoo.cli.main import main
    from zoo.cli.runs import load_run

    out = str(tmp_path / "vamp")
    assert main(["train", "--model", "hvae", "--prior", "vamp:6", "--data", "digits", "--out", out] + FAST) == 0
    assert main(["evaluate", out, "--samples", "20", "--no-progress", "--device", "cpu"]) == 0
    assert "NLL (K=20)" in capsys.readouterr().out
    comps = load_run(out, torch.device("cpu"))
    state = torch.load(f"{out}/best.pt", weights_only=True)
    assert torch.equal(comps.model.prior.pseudo_inputs_raw, state["model"]["prior.pseudo_inputs_raw"])
    assert comps.model.prior.guide is comps.guide
