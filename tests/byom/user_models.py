"""Pyro models written the way a user writes them, outside the zoo's packages (no zoo import at all).

Used by tests/byom through the Python API and through ``zoo train --model tests/byom/user_models.py:NAME``.
"""
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints


class LaplaceVAE(nn.Module):
    """A VAE with a Laplace prior: z ~ Laplace(0, 1)^d, x ~ Bernoulli(sigmoid(f(z)))."""

    def __init__(self, data_dim, latent_dim=4, hidden=32):
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, data_dim))

    def forward(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Laplace(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)


hier_top = nn.Linear(3, 2 * 4)
hier_out = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64))


def hierarchy(x, y=None):
    """Two latents z1 -> z2 -> x as a plain function; its networks are module-level nn.Modules."""
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
        loc, raw = hier_top(z1).chunk(2, -1)
        z2 = pyro.sample("z2", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=hier_out(z2)).to_event(1), obs=x)


def linear_gaussian(x, y=None):
    """z ~ N(0, I_2), x ~ N(W z + b, s^2 I) with W, b, s as pyro.params: log p(x) = log N(x; b, W W^T + s^2 I)."""
    d = x.shape[-1]
    W = pyro.param("W", lambda: 0.3 * torch.randn(d, 2, generator=torch.Generator().manual_seed(1)))
    b = pyro.param("b", lambda: torch.zeros(d))
    s = pyro.param("s", lambda: torch.tensor(0.8), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + b, s).to_event(1), obs=x)


def gamma_scale(x, y=None):
    """A positive latent per point: tau ~ Gamma(2, 2), x ~ N(m, 1/tau) with a learned mean m."""
    m = pyro.param("m", lambda: torch.zeros(x.shape[-1]))
    with pyro.plate("data", x.shape[0]):
        tau = pyro.sample("tau", dist.Gamma(x.new_tensor(2.0), 2.0))
        pyro.sample("x", dist.Normal(m, tau.rsqrt().unsqueeze(-1)).to_event(1), obs=x)


laplace_decoder = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64))


def laplace_vae(x, y=None):
    """The Laplace-prior VAE as a plain function whose decoder is registered with pyro.module."""
    pyro.module("decoder", laplace_decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Laplace(x.new_zeros(4), 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=laplace_decoder(z)).to_event(1), obs=x)


class Hierarchy(nn.Module):
    """The two-latent hierarchy z1 -> z2 -> x as a class."""

    def __init__(self, data_dim, z1=3, z2=4):
        super().__init__()
        self.z1 = z1
        self.top = nn.Linear(z1, 2 * z2)
        self.out = nn.Sequential(nn.Linear(z2, 32), nn.Tanh(), nn.Linear(32, data_dim))

    def forward(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(x.new_zeros(self.z1), 1.0).to_event(1))
            loc, raw = self.top(z1).chunk(2, -1)
            z2 = pyro.sample("z2", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.out(z2)).to_event(1), obs=x)


def hierarchy_guide_missing_z2(x, y=None):
    """A user's guide that forgets z2."""
    loc = pyro.param("g_loc", lambda: torch.zeros(3))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z1", dist.Normal(loc, 1.0).to_event(1))


def hierarchy_guide_extra_site(x, y=None):
    """A user's guide that samples a site the model does not have."""
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z1", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
        pyro.sample("z2", dist.Normal(x.new_zeros(4), 1.0).to_event(1))
        pyro.sample("w", dist.Normal(x.new_zeros(1), 1.0).to_event(1))


def global_latent(x, y=None):
    """A latent outside the data plate."""
    w = pyro.sample("w", dist.Normal(x.new_zeros(()), 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(w, 1.0).expand([x.shape[-1]]).to_event(1), obs=x)


def no_observed_x(x, y=None):
    """Observes the data under another name."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
        pyro.sample("obs", dist.Normal(z.sum(-1, keepdim=True), 1.0).expand([x.shape[0], x.shape[-1]]).to_event(1),
                    obs=x)


def plate_left_of_data(x, y=None):
    """A nested plate that Pyro puts left of the data plate (dims allocated automatically)."""
    with pyro.plate("data", x.shape[0]):
        with pyro.plate("parts", 3):
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0))
        pyro.sample("x", dist.Normal(z.sum(0).unsqueeze(-1), 1.0).expand([x.shape[0], x.shape[-1]]).to_event(1),
                    obs=x)


def nested_plate(x, y=None):
    """A per-point latent vector written as a nested plate right of the data plate: per-point shape (3,)."""
    with pyro.plate("data", x.shape[0], dim=-2):
        with pyro.plate("parts", 3, dim=-1):
            z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0))
        loc = z.sum(-1, keepdim=True).unsqueeze(-1)  # (..., B, 1, 1): broadcast-safe under a particle plate
        pyro.sample("x", dist.Normal(loc, 1.0).expand(loc.shape[:-1] + x.shape[-1:]).to_event(1), obs=x.unsqueeze(-2))


def discrete_latent(x, y=None):
    """A Bernoulli latent that is not enumerated."""
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Bernoulli(x.new_tensor(0.5)))
        pyro.sample("x", dist.Normal(c.unsqueeze(-1), 1.0).expand([x.shape[0], x.shape[-1]]).to_event(1), obs=x)


hidden_weight = torch.zeros(64, requires_grad=True)


def untracked_tensor(x, y=None):
    """Uses a global tensor that requires grad but is no parameter the zoo can find."""
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(hidden_weight + z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)
