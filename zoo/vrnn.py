"""The variational recurrent neural network (Chung, Kastner, Dinh, Goel, Courville & Bengio 2015, "A Recurrent Latent
Variable Model for Sequential Data"), as a Pyro model.

    h_0 = 0
    z_t | z_<t, x_<t ~ N(mu_prior(h_{t-1}), diag sigma_prior(h_{t-1})^2)          (prior network)
    x_t | z_<=t, x_<t ~ p(x_t | phi_dec([phi_z(z_t), h_{t-1}]))                    (emission network)
    h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1})                                     (recurrence)

so p(x_<=T, z_<=T) = prod_t p(x_t | z_<=t, x_<t) p(z_t | z_<t, x_<t). phi_x and phi_z are the paper's feature
extractors (one hidden layer each), the prior and emission networks one hidden layer each, all of width ``hidden[0]``
(``--hidden 128``); the recurrence is a GRU (the paper uses an LSTM for speech and a GRU is among its variants).
Emissions: ``bernoulli`` (binary pixels: mnist5k-rows) or ``gaussian`` (mean and standard deviation per dimension
from the emission network, as the paper's continuous outputs). One latent site per step (``z_1`` .. ``z_T``) under
``pyro.markov`` and ``poutine.mask``; one observed site ``"x"`` of masked per-step emissions (:mod:`zoo.sequences`).

The paper's inference network q(z_t | x_t, h_{t-1}) reuses the model's phi_x, phi_z and recurrence: guide ``vrnn``
(guides/sequences.py); ``filtering`` and ``smoothing`` are the swappable alternatives.
"""
from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import ConfigError, DataError
from zoo.likelihoods import BernoulliLikelihood
from zoo.model import MODELS, data_plate
from zoo.networks.mlp import MLP
from zoo.networks.precision import full_precision
from zoo.sequences import SequenceModel

EMISSIONS = ("bernoulli", "gaussian")
MIN_SCALE = 1e-3


class GaussianEmission(nn.Module):
    """p(x_t | .) = N(loc, diag softplus(raw)^2) from the emission network's (loc, raw) per dimension."""

    params_per_dim = 2
    is_discrete = False

    def forward(self, out):
        loc, raw = full_precision(out).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw) + MIN_SCALE, validate_args=False).to_event(1)

    def mean(self, out):
        return out.chunk(2, dim=-1)[0]


def gaussian_params(net_out: torch.Tensor):
    loc, raw = full_precision(net_out).chunk(2, dim=-1)
    return loc, F.softplus(raw) + MIN_SCALE


@MODELS.register("vrnn", paper="Chung, Kastner, Dinh, Goel, Courville & Bengio 2015",
                 summary="variational RNN: per step z_t ~ p(z_t | h_{t-1}), x_t ~ p(x_t | z_t, h_{t-1}), "
                         "h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1}); Bernoulli or Gaussian emissions (sequences)",
                 guide="vrnn", data="mnist5k-rows", latent_dim=16, hidden=(128,))
class VRNN(SequenceModel):
    """Variational recurrent neural network; see the module docstring."""

    def __init__(self, data_dim: int, sequence_shape: Optional[Tuple[int, int]] = None, latent_dim: int = 16,
                 hidden=(128,), likelihood: str = "bernoulli", activation: str = "relu",
                 image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, sequence_shape, image_shape)
        hidden = tuple(hidden or ())
        if len(hidden) != 1 or hidden[0] < 1:
            raise ConfigError(f"vrnn: --hidden is the one width of its GRU state and networks (e.g. --hidden 128), "
                              f"got {','.join(map(str, hidden)) or 'none'}")
        if likelihood not in EMISSIONS:
            raise ConfigError(f"vrnn: emissions are {' or '.join(EMISSIONS)} (--likelihood), got {likelihood!r}")
        if latent_dim < 1:
            raise ConfigError(f"vrnn: --latent-dim must be positive, got {latent_dim}")
        H, D, k = hidden[0], self.step_dim, latent_dim
        self.latent_dim, self.hidden, self.activation, self.state_dim = latent_dim, hidden, activation, H
        self.likelihood = BernoulliLikelihood() if likelihood == "bernoulli" else GaussianEmission()
        self.phi_x = MLP(D, (H,), None, act=activation)
        self.phi_z = MLP(k, (H,), None, act=activation)
        self.prior_net = MLP(H, (H,), 2 * k, act=activation)
        self.emission = MLP(2 * H, (H,), D * self.likelihood.params_per_dim, act=activation)
        self.rnn = nn.GRUCell(2 * H, H)

    # ------------------------------------------------------------------------------------------- pieces
    def initial_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.state_dim)

    def prior(self, h: torch.Tensor):
        """(loc, scale) of p(z_t | h_{t-1})."""
        return gaussian_params(self.prior_net(h))

    def emission_out(self, fz: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The emission network's output for p(x_t | z_t, h_{t-1}) (parameters per dimension)."""
        shape = torch.broadcast_shapes(fz.shape[:-1], h.shape[:-1])
        return self.emission(torch.cat([fz.expand(shape + fz.shape[-1:]), h.expand(shape + h.shape[-1:])], -1))

    def step(self, h: torch.Tensor, fx: torch.Tensor, fz: torch.Tensor) -> torch.Tensor:
        """h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1}) over any leading (particle, batch) dimensions."""
        shape = torch.broadcast_shapes(h.shape[:-1], fx.shape[:-1], fz.shape[:-1])
        inp = torch.cat([fx.expand(shape + fx.shape[-1:]), fz.expand(shape + fz.shape[-1:])], -1)
        out = self.rnn(inp.reshape(-1, inp.shape[-1]), h.expand(shape + h.shape[-1:]).reshape(-1, h.shape[-1]))
        return out.reshape(shape + out.shape[-1:])

    # ------------------------------------------------------------------------------------------- the model
    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        xs, mask = self.split(x)
        fx = self.phi_x(xs)  # (B, T, H): the observed steps' features, computed once
        outs = []
        with data_plate(x):
            h = self.initial_state(x.shape[0], x)
            for t in pyro.markov(range(xs.shape[-2])):
                loc, scale = self.prior(h)
                with poutine.mask(mask=mask[..., t]):
                    z = pyro.sample(self.site_name(t), dist.Normal(loc, scale, validate_args=False).to_event(1))
                fz = self.phi_z(z)
                outs.append(self.emission_out(fz, h))
                h = self.step(h, fx[..., t, :], fz)
            fn = self.likelihood(torch.stack(outs, dim=-2)).mask(mask).to_event(1)
            return pyro.sample("x", fn, obs=xs)

    def check_values(self, values, where):
        if isinstance(self.likelihood, BernoulliLikelihood):
            if not bool(((values == 0) | (values == 1)).all()):
                raise DataError(f"vrnn's Bernoulli emissions need binary data, but {where} has values that are not "
                                f"all 0 or 1; binarize them (--binarize dynamic|static) or use --likelihood gaussian")
        super().check_values(values, where)

    @torch.no_grad()
    def generate(self, n: int, like: torch.Tensor, mean: bool) -> torch.Tensor:
        h = self.initial_state(n, like)
        steps = []
        for t in range(self.num_steps):
            loc, scale = self.prior(h)
            z = loc + scale * torch.randn_like(loc)
            fz = self.phi_z(z)
            out = self.emission_out(fz, h)
            drawn = self.likelihood(out).sample()
            steps.append(self.likelihood.mean(out) if mean else drawn)
            h = self.step(h, self.phi_x(drawn), fz)
        return torch.stack(steps, dim=1).reshape(n, -1)

    def extra_repr(self):
        return (f"steps={self.num_steps}, step_dim={self.step_dim}, z={self.latent_dim}, h={self.state_dim}, "
                f"emission={'bernoulli' if isinstance(self.likelihood, BernoulliLikelihood) else 'gaussian'}")
