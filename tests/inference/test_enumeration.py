"""The enumerated objectives of M2 against hand-written sums over the classes; gradients of the classifier; the
evaluation's log p(x) with y summed out against numerical quadrature."""
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F

from guides.semi_supervised import SemiSupervisedGuide
from inference.enumeration import EnumELBO, IWAEEnum, enumerated_weight_terms
from inference.evaluation import importance_sample
from inference.objectives import build_objective
from zoo.m2 import M2

C, D, LATENT = 3, 10, 2


def _setup(alpha=0.0, latent=LATENT, seed=0, hidden=(8,)):
    torch.manual_seed(seed)
    model = M2(D, num_classes=C, latent_dim=latent, hidden=hidden, likelihood="bernoulli", activation="tanh",
               alpha=alpha)
    guide = SemiSupervisedGuide(model)
    x = torch.bernoulli(torch.rand(6, D, generator=torch.Generator().manual_seed(seed + 1)))
    return model, guide, x


def _hand_unlabelled(model, guide, x, kl_weight=1.0):
    """-sum_b sum_c q(c|x_b) [log p(x_b|c,z) + w (log p(z) - log q(z|x_b,c)) + log p(c) - log q(c|x_b)], with the
    same z draws as Pyro (one rsample of shape (C, B, D))."""
    log_q_y = F.log_softmax(guide.classify(x), -1).T  # (C, B)
    h = guide.encoder(x)
    y = torch.arange(C).reshape(C, 1).expand(C, x.shape[0])
    loc, scale = guide.gaussian("z", torch.cat([h.expand(C, -1, -1), F.one_hot(y, C).float()], -1))
    z = dist.Normal(loc, scale).rsample()
    log_qz = dist.Normal(loc, scale).log_prob(z).sum(-1)
    log_pz = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    logits = model.decoder(torch.cat([z, F.one_hot(y, C).float()], -1))
    log_px = dist.Bernoulli(logits=logits).log_prob(x).sum(-1)
    inner = log_px + kl_weight * (log_pz - log_qz) + math.log(1.0 / C) - log_q_y
    return -(log_q_y.exp() * inner).sum()


def _hand_labelled(model, guide, x, y, kl_weight=1.0):
    """-sum_b [log p(x_b|y_b,z) + w (log p(z) - log q(z|x_b,y_b)) + log p(y_b)] with one z per point."""
    h = guide.encoder(x)
    loc, scale = guide.gaussian("z", torch.cat([h, F.one_hot(y, C).float()], -1))
    z = dist.Normal(loc, scale).rsample()
    log_qz = dist.Normal(loc, scale).log_prob(z).sum(-1)
    log_pz = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_px = dist.Bernoulli(logits=model.decoder(torch.cat([z, F.one_hot(y, C).float()], -1))).log_prob(x).sum(-1)
    return -(log_px + kl_weight * (log_pz - log_qz) + math.log(1.0 / C)).sum()


@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_enum_loss_is_the_hand_written_sum_over_classes(kl_weight):
    model, guide, x = _setup(alpha=5.0)  # alpha has no effect without labels
    objective = build_objective("enum")
    objective.kl_weight = kl_weight
    pyro.set_rng_seed(7)
    loss = objective.loss(model, guide, x, torch.full((x.shape[0],), -1))
    pyro.set_rng_seed(7)
    expected = _hand_unlabelled(model, guide, x, kl_weight)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-4)
    pyro.set_rng_seed(7)
    assert float(objective.loss(model, guide, x, None).detach()) == pytest.approx(float(expected.detach()), rel=1e-4)


def _latent_sites(trace):
    return [n for n in trace.stochastic_nodes if type(trace.nodes[n]["fn"]).__name__ != "_Subsample"]  # not plates


def test_labelled_batch_is_log_p_x_y_plus_the_auxiliary_term_and_nothing_enumerated():
    alpha = 0.7
    model, guide, x = _setup(alpha=alpha)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    guide_trace = poutine.trace(poutine.enum(guide, first_available_dim=-2)).get_trace(x, y)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y)
    assert not any(s["infer"].get("enumerate") for s in guide_trace.nodes.values() if s["type"] == "sample")
    assert _latent_sites(guide_trace) == ["z_labelled"]
    assert _latent_sites(model_trace) == ["z_labelled"]
    assert set(model_trace.observation_nodes) == {"y_labelled", "x_labelled"}
    pyro.set_rng_seed(3)
    loss = EnumELBO().loss(model, guide, x, y)
    pyro.set_rng_seed(3)
    bound = _hand_labelled(model, guide, x, y)
    aux = alpha * F.cross_entropy(guide.classify(x), y, reduction="sum")  # B * mean = sum when all are labelled
    assert float(loss.detach()) == pytest.approx(float((bound + aux).detach()), rel=1e-4)


def test_mixed_batch_is_the_labelled_plus_the_unlabelled_part():
    model, guide, x = _setup(alpha=0.0)
    y = torch.tensor([-1, 2, -1, 0, -1, -1])
    has = y >= 0
    pyro.set_rng_seed(11)
    loss = EnumELBO().loss(model, guide, x, y)
    pyro.set_rng_seed(11)  # label_parts: the labelled part is traced first, then the unlabelled one
    expected = _hand_labelled(model, guide, x[has], y[has]) + _hand_unlabelled(model, guide, x[~has])
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-4)


def test_auxiliary_term_is_alpha_times_batch_size_times_the_labelled_mean():
    model, guide, x = _setup(alpha=0.5)
    y = torch.tensor([-1, 2, -1, 0, -1, -1])
    objective = EnumELBO()
    pyro.set_rng_seed(1)
    with_aux = objective.loss(model, guide, x, y)
    model.alpha = 0.0
    pyro.set_rng_seed(1)
    without = objective.loss(model, guide, x, y)
    has = y >= 0
    ce = F.cross_entropy(guide.classify(x[has]), y[has])  # mean over the 2 labelled points
    assert float((with_aux - without).detach()) == pytest.approx(float((0.5 * 6 * ce).detach()), rel=1e-4)


def _classifier_grad(loss, guide):
    guide.zero_grad()
    loss.backward()
    return sum(float(p.grad.abs().sum()) for p in guide.classifier.parameters() if p.grad is not None)


@pytest.mark.parametrize("spec", ["enum", "iwae-enum:4"])
def test_classifier_gets_a_gradient_from_the_unlabelled_term(spec):
    model, guide, x = _setup(alpha=0.0)
    loss = build_objective(spec).loss(model, guide, x, torch.full((x.shape[0],), -1))
    assert _classifier_grad(loss, guide) > 1e-6


def test_fully_marginalised_bound_gives_the_classifier_no_gradient():
    """log mean_k sum_y p(x,y,z_yk)/q(z_yk|x,y) does not involve q(y|x): why iwae-enum keeps sum_y q(y|x) outside."""
    model, guide, x = _setup(alpha=0.0)
    t = enumerated_weight_terms(model, guide, x, None, 4)
    loss = -(torch.logsumexp(t.log_w, 0)).sum()
    assert _classifier_grad(loss, guide) == 0.0


def test_iwae_enum_with_one_particle_is_the_enum_elbo():
    model, guide, x = _setup(alpha=0.3)
    y = torch.tensor([-1, 2, -1, 0, -1, -1])
    pyro.set_rng_seed(5)
    iw = IWAEEnum(1).loss(model, guide, x, y)
    pyro.set_rng_seed(5)
    enum = EnumELBO().loss(model, guide, x, y)
    assert float(iw.detach()) == pytest.approx(float(enum.detach()), rel=1e-4)


def _exact_log_px(model, x, grid=4001, lim=9.0):
    """log p(x) = log sum_y p(y) int p(z) p(x|y,z) dz by the trapezoid rule (latent_dim = 1)."""
    z = torch.linspace(-lim, lim, grid, dtype=torch.float64).reshape(grid, 1)
    out = []
    with torch.no_grad():
        for c in range(C):
            logits = model.decoder(torch.cat([z.float(), F.one_hot(torch.full((grid,), c), C).float()], -1)).double()
            log_px_z = dist.Bernoulli(logits=logits.unsqueeze(1)).log_prob(x.double()).sum(-1)  # (grid, B)
            f = log_px_z + dist.Normal(0.0, 1.0).log_prob(z) - math.log(C)
            w = torch.full((grid, 1), 2 * lim / (grid - 1), dtype=torch.float64)
            w[0] = w[-1] = lim / (grid - 1)
            out.append(torch.logsumexp(f + w.log(), 0))
    return torch.logsumexp(torch.stack(out), 0)


def test_evaluation_sums_y_out_of_log_p_x():
    model, guide, x = _setup(latent=1, hidden=(6,))
    with torch.no_grad():  # an over-dispersed proposal (sd ~ 1.7 against a posterior near N(0, 1)): light-tailed weights
        guide.gaussian.heads["z"].bias[1] = 1.5
    exact = _exact_log_px(model, x)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])  # the evaluation ignores labels: it estimates log p(x), not log p(x, y)
    res = importance_sample(model, guide, x, labels, num_samples=3000, batch_size=6)
    assert torch.allclose(torch.as_tensor(res["log_px"]), exact, atol=0.05)
    assert (res["elbo"] <= res["log_px"] + 1e-6).all()
    assert res["elbo"] == pytest.approx(res["recon"] - res["kl"], rel=1e-5)
    assert res["posterior_means"].shape == (6, 1)
