"""The lean ELBO is Pyro's ELBO: same loss and same gradients (1e-6 relative) under the same seed."""
import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

import guides.flows  # noqa: F401
from guides.base import build_guide
from inference.latent_scale import scale_latents
from inference.lean_elbo import lean_elbo_loss
from zoo.vae import VAE


def _grads(loss, params):
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize("guide_name", ["diagonal", "iaf:2", "planar:2"])
@pytest.mark.parametrize("analytic", [True, False])
@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_lean_elbo_equals_pyro_elbo(guide_name, analytic, kl_weight):
    torch.manual_seed(0)
    model = VAE(20, latent_dim=4, hidden=(16,), likelihood="bernoulli").double()
    guide = build_guide(guide_name, model).double()
    x = torch.bernoulli(torch.rand(9, 20, dtype=torch.float64))
    m, g = scale_latents(model, kl_weight), scale_latents(guide, kl_weight)
    params = list(model.parameters()) + list(guide.parameters())
    reference = TraceMeanField_ELBO() if analytic else Trace_ELBO()
    pyro.set_rng_seed(3)
    expected = reference.differentiable_loss(m, g, x)
    pyro.set_rng_seed(3)
    actual = lean_elbo_loss(m, g, x, analytic_kl=analytic)
    assert torch.allclose(actual, expected, rtol=1e-6, atol=0)
    for a, e in zip(_grads(actual, params), _grads(expected, params)):
        assert torch.allclose(a, e, rtol=1e-6, atol=1e-10)


def test_lean_elbo_refuses_enumerated_guides():
    def guide():
        pyro.sample("y", pyro.distributions.Categorical(torch.ones(3) / 3), infer={"enumerate": "parallel"})

    def model():
        pyro.sample("y", pyro.distributions.Categorical(torch.ones(3) / 3))

    with pytest.raises(ValueError, match="reparameterised"):
        lean_elbo_loss(model, guide)
