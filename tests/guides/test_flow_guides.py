"""Flow guides end to end: the guide's log q(z_T|x) is the change of variables of its whole flow, and it is amortized."""
import pytest
import torch

import guides.flows  # noqa: F401  (registers the flow guides)
from guides.base import GUIDES, build_guide
from zoo.vae import VAE

FLOW_GUIDES = [e.name for e in GUIDES if e.arg == "K"]


def _guide(name, dim=3, layers=3):
    torch.manual_seed(0)
    model = VAE(10, latent_dim=dim, hidden=(6,)).double()
    guide = build_guide(f"{name}:{layers}", model).double()
    with torch.no_grad():  # move every parameter away from its initial value
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, guide


@pytest.mark.parametrize("name", FLOW_GUIDES)
def test_log_q_is_the_change_of_variables_of_the_composed_flow(name):
    model, guide = _guide(name)
    x = torch.bernoulli(torch.rand(4, 10, dtype=torch.float64))
    site = guide.sites[0]
    context = guide.encoder(x)
    q = guide.site_distribution(site, context)
    transforms = q.transforms

    def flow(z0):
        for t in transforms:
            z0 = t(z0)
        return z0

    z0 = q.base_dist.rsample()
    log_det = torch.stack([
        torch.linalg.slogdet(torch.autograd.functional.jacobian(
            lambda v, i=i: flow(z0.index_put((torch.tensor(i),), v))[i], z0[i]))[1]
        for i in range(x.shape[0])])
    expected = q.base_dist.log_prob(z0) - log_det
    z_t = flow(z0)  # fills each transform's cache with this (z_{t-1}, z_t) pair, as sampling does
    assert torch.allclose(q.log_prob(z_t), expected, atol=1e-8)


@pytest.mark.parametrize("name", FLOW_GUIDES)
def test_flow_parameters_are_emitted_per_data_point(name):
    """Amortized: the same z_0 goes through different maps for different x (other zoos share them)."""
    model, guide = _guide(name)
    x = torch.bernoulli(torch.rand(2, 10, dtype=torch.float64))
    q = guide.site_distribution(guide.sites[0], guide.encoder(x))
    z0 = torch.randn(1, 3, dtype=torch.float64).expand(2, 3)
    z = z0
    for t in q.transforms:
        z = t(z)
    assert not torch.allclose(z[0] - z0[0], z[1] - z0[1], atol=1e-6)
