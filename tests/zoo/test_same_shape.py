"""The identity expand of zoo/distributions/same_shape.py and the lean trace of inference/lean_elbo.py: the same
distributions, traces, losses and gradients as Pyro's own classes and handlers, bit for bit."""
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from guides.diagonal import DiagonalGuide
from inference.lean_elbo import lean_elbo_loss, run_traced
from zoo.distributions.same_shape import diagonal_normal
from zoo.priors import StandardNormalPrior
from zoo.vae import VAE


def test_expand_to_the_same_shape_is_the_identity_and_other_shapes_are_torchs():
    loc, scale = torch.randn(5, 3), torch.rand(5, 3) + 0.1
    q = diagonal_normal(loc, scale)
    assert q.expand([5]) is q and q.base_dist.expand([5, 3]) is q.base_dist
    wide = q.expand([2, 5])
    ref = dist.Normal(loc, scale).to_event(1).expand([2, 5])
    assert wide.batch_shape == ref.batch_shape == (2, 5) and wide.event_shape == (3,)
    x = torch.randn(2, 5, 3)
    assert torch.equal(wide.log_prob(x), ref.log_prob(x))
    prior = StandardNormalPrior(3)(5, loc)
    assert prior.expand([5]) is prior and prior.expand([4, 5]).batch_shape == (4, 5)


def test_plate_hands_the_distribution_on_uncopied():
    q = diagonal_normal(torch.zeros(4, 2), torch.ones(4, 2))

    def guide():
        with pyro.plate("data", 4):
            pyro.sample("z", q)

    assert poutine.trace(guide).get_trace().nodes["z"]["fn"] is q


def _vae_and_guide(seed=0):
    torch.manual_seed(seed)
    model = VAE(12, latent_dim=3, hidden=(8,))
    return model, DiagonalGuide(model)


class _PyroNormalGuide(DiagonalGuide):
    """The guide as it was: Pyro's Normal(...).to_event(1), copied by the plate's expand."""

    def site_distribution(self, site, context):
        loc, scale = self.gaussian(site.name, context)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_loss_and_gradients_bit_for_bit_as_with_pyros_classes(likelihood):
    torch.manual_seed(0)
    x = (torch.rand(6, 12) < 0.5).float()
    results = []
    for guide_class in (DiagonalGuide, _PyroNormalGuide):
        torch.manual_seed(1)
        model = VAE(12, latent_dim=3, hidden=(8,), likelihood=likelihood)
        guide = guide_class(model)
        torch.manual_seed(2)
        loss = lean_elbo_loss(model, guide, x, None)
        params = list(model.parameters()) + list(guide.parameters())
        results.append((loss.detach(), torch.autograd.grad(loss, params)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_run_traced_records_what_pyros_trace_handler_records():
    model, guide = _vae_and_guide()
    x = (torch.rand(5, 12) < 0.5).float()
    torch.manual_seed(3)
    ours = run_traced(guide, x, None)
    torch.manual_seed(3)
    pyros = poutine.trace(guide).get_trace(x, None)
    names = [n for n, s in pyros.nodes.items() if s["type"] in ("sample", "param")]
    assert list(ours.nodes) == names
    assert torch.equal(ours.nodes["z"]["value"], pyros.nodes["z"]["value"])
    replayed = run_traced(model, x, None, replay=ours)
    assert replayed.nodes["z"]["value"] is ours.nodes["z"]["value"]
    assert replayed.nodes["x"]["is_observed"] and torch.equal(replayed.nodes["x"]["value"], x)


def test_run_traced_reports_the_shapes_on_an_error():
    def bad(x):
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Normal(torch.zeros(4), 1.0))

    with pytest.raises(ValueError, match="Shape mismatch") as info:
        run_traced(bad, None)
    assert "Trace Shapes" in str(info.value) or "Sample Sites" in str(info.value)
