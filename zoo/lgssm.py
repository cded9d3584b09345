"""A linear-Gaussian state-space model written as a Pyro program, the sequence machinery's exact reference.

    z_1 ~ N(0, diag q0),   z_t | z_{t-1} ~ N(A z_{t-1}, diag q),   x_t | z_t ~ N(C z_t + b, diag r)

with A, C, b and the log-variances log q0, log q, log r learned. One latent site per step (``z_1`` .. ``z_T``) under
``pyro.markov`` inside the data plate, each masked by the step's mask, and one observed site ``"x"`` holding the
masked per-step Gaussians (:mod:`zoo.sequences`). Its exact log p(x_1..x_L) per sequence is the Kalman filter's
(:meth:`LGSSM.exact_log_likelihood`, :mod:`zoo.kalman`), which the tests compare with the zoo's importance-sampled
estimate. Kalman 1960; as a learned model, Ghahramani & Hinton 1996 ("Parameter estimation for linear dynamical
systems").
"""
import math
from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from zoo.kalman import kalman_log_likelihood
from zoo.model import MODELS, data_plate
from zoo.sequences import SequenceModel


@MODELS.register("lgssm", paper="Kalman 1960; Ghahramani & Hinton 1996",
                 summary="linear-Gaussian state-space model z_t = A z_{t-1} + w_t, x_t = C z_t + b + v_t (sequences; "
                         "exact log p(x) by the Kalman filter)",
                 guide="filtering", data="lgssm-synthetic", binarize="none", latent_dim=2, hidden=(64,))
class LGSSM(SequenceModel):
    """Linear-Gaussian state-space model; see the module docstring."""

    def __init__(self, data_dim: int, sequence_shape: Optional[Tuple[int, int]] = None, latent_dim: int = 2,
                 hidden=(64,), image_shape: Optional[Tuple[int, int, int]] = None):
        super().__init__(data_dim, sequence_shape, image_shape)
        self.latent_dim = latent_dim
        self.hidden = tuple(hidden or ())  # the width of the generic guides' encoder (the model itself has none)
        d, k = self.step_dim, latent_dim
        self.A = nn.Parameter(0.9 * torch.eye(k))
        self.C = nn.Parameter(torch.randn(d, k) / math.sqrt(k))
        self.b = nn.Parameter(torch.zeros(d))
        self.log_q0 = nn.Parameter(torch.zeros(k))
        self.log_q = nn.Parameter(torch.full((k,), math.log(0.1)))
        self.log_r = nn.Parameter(torch.full((d,), math.log(0.1)))

    @torch.no_grad()
    def set_parameters(self, A, C, b, q0, q, r):
        """Set the parameters (variances q0, q, r as vectors), e.g. to a data set's generating ones."""
        for p, v in ((self.A, A), (self.C, C), (self.b, b), (self.log_q0, torch.as_tensor(q0).log()),
                     (self.log_q, torch.as_tensor(q).log()), (self.log_r, torch.as_tensor(r).log())):
            p.copy_(torch.as_tensor(v, dtype=p.dtype))
        return self

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        xs, mask = self.split(x)
        q0, q, r = (v.mul(0.5).exp() for v in (self.log_q0, self.log_q, self.log_r))  # standard deviations
        locs = []
        with data_plate(x):
            z = None
            for t in pyro.markov(range(xs.shape[-2])):
                loc = torch.zeros_like(q0).expand(x.shape[0], -1) if z is None else z @ self.A.T
                with poutine.mask(mask=mask[..., t]):
                    z = pyro.sample(self.site_name(t), dist.Normal(loc, q0 if t == 0 else q).to_event(1))
                locs.append(z @ self.C.T + self.b)
            loc = torch.stack(locs, dim=-2)  # (..., B, T, D)
            fn = dist.Normal(loc, r, validate_args=False).to_event(1).mask(mask).to_event(1)
            return pyro.sample("x", fn, obs=xs)

    def observed_is_discrete(self) -> bool:
        return False  # Gaussian emissions: a density, no bits/dim

    def exact_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) exact log p(x_1..x_L) of each sequence by the Kalman filter, in float64."""
        xs, mask = self.split(x)
        p = {k: v.detach().double() for k, v in self.named_parameters()}
        return kalman_log_likelihood(xs.double(), mask, p["A"], p["C"], p["b"], torch.diag(p["log_q"].exp()),
                                     torch.diag(p["log_r"].exp()), torch.diag(p["log_q0"].exp()))

    @torch.no_grad()
    def generate(self, n: int, like: torch.Tensor, mean: bool) -> torch.Tensor:
        q0, q, r = (v.mul(0.5).exp() for v in (self.log_q0, self.log_q, self.log_r))
        z = q0 * torch.randn(n, self.latent_dim, device=like.device, dtype=like.dtype)
        steps = []
        for t in range(self.num_steps):
            if t:
                z = z @ self.A.T + q * torch.randn_like(z)
            loc = z @ self.C.T + self.b
            steps.append(loc if mean else loc + r * torch.randn_like(loc))
        return torch.stack(steps, dim=1).reshape(n, -1)
