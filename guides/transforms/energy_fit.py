r"""Fitting a non-amortized flow to an energy function by reverse KL (Rezende & Mohamed 2015, Section 6.1).

The flow density :math:`q` is a base Gaussian pushed through ``num_layers`` steps of a family of
:data:`guides.transforms.FLOW_FAMILIES` (or no step at all: the diagonal Gaussian baseline). The loss is

    :math:`\mathcal{L}_\beta = E_{q}\left[\log q(\mathbf{z}) + \beta\, U(\mathbf{z})\right]`,

with :math:`\beta` optionally annealed from 0.01 to 1 (the paper uses :math:`\beta_t = \min(1, 0.01 + t/10^4)`).
At :math:`\beta = 1`, :math:`\mathcal{L}_1 + \log Z = \mathrm{KL}(q\,\|\,p) \ge 0` with :math:`\log Z` from numerical
integration (:func:`guides.transforms.energies.log_normalizer`); :func:`kl_estimate` reports it with its Monte-Carlo
standard error. Samples and their log-densities come from one pass through the steps (each step's log-determinant is
cached from its forward call), so the flows need no inverse.
"""
import contextlib
import math
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from guides.transforms import make_flow
from guides.transforms.energies import energy, log_normalizer

__all__ = ["FlowDensity", "FitResult", "make_density", "fit_energy", "fit_energy_restarts", "kl_estimate", "torch_threads",
           "BASELINE"]

#: Name of the baseline: a diagonal Gaussian with learned mean and scale, no flow step.
BASELINE = "diagonal"


class FlowDensity(nn.Module):
    """A Gaussian base (learned diagonal, or fixed standard normal) followed by flow steps, in ``dim`` dimensions."""

    def __init__(self, transforms: List[nn.Module], dim: int = 2, learn_base: bool = True):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)
        self.dim = dim
        self.loc = nn.Parameter(torch.zeros(dim), requires_grad=learn_base)
        self.log_scale = nn.Parameter(torch.zeros(dim), requires_grad=learn_base)

    def rsample_with_log_prob(self, n: int, generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``n`` reparameterised samples ``(n, dim)`` and their log-densities ``(n,)``."""
        eps = torch.randn(n, self.dim, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        z = self.loc + self.log_scale.exp() * eps
        log_q = (-0.5 * eps.pow(2) - self.log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)
        for t in self.transforms:
            y = t(z)
            log_q = log_q - t.log_abs_det_jacobian(z, y)
            z = y
        return z, log_q


def make_density(family: str, num_layers: int, dim: int = 2, learn_base: bool = True,
                 init_loc: Optional[Sequence[float]] = None, **options) -> FlowDensity:
    """``family`` is a name of :data:`~guides.transforms.FLOW_FAMILIES` or :data:`BASELINE` (no step); the base mean
    starts at ``init_loc`` (default the origin)."""
    steps = [] if family == BASELINE else make_flow(family, dim, num_layers, **options)
    density = FlowDensity(steps, dim, learn_base=learn_base or family == BASELINE)
    if init_loc is not None:
        with torch.no_grad():
            density.loc.copy_(torch.as_tensor(init_loc, dtype=density.loc.dtype))
    return density


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Run the block with ``n`` intra-op torch threads (restored afterwards); ``None`` leaves the setting alone."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class FitResult:
    energy: str
    family: str
    num_layers: int
    steps: int
    kl: float  # E_q[log q + U] + log Z, nats
    kl_se: float  # its Monte-Carlo standard error
    seconds: float  # fitting time
    density: FlowDensity


def kl_estimate(density: FlowDensity, energy_name: str, num_samples: int = 20000, log_z: Optional[float] = None,
                seed: int = 0, chunk: int = 10000) -> Tuple[float, float]:
    """``KL(q || p)`` estimated as the mean of ``log q(z) + U(z) + log Z`` over ``num_samples`` draws, and its
    standard error."""
    if log_z is None:
        log_z = log_normalizer(energy_name)
    g = torch.Generator(device=density.loc.device).manual_seed(seed)
    vals = []
    with torch.no_grad():
        for start in range(0, num_samples, chunk):
            z, log_q = density.rsample_with_log_prob(min(chunk, num_samples - start), generator=g)
            vals.append((log_q + energy(energy_name, z)).double())
    v = torch.cat(vals) + log_z
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


def fit_energy(
    energy_name: str,
    family: str,
    num_layers: int = 16,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-2,
    seed: int = 0,
    anneal_steps: int = 0,
    learn_base: bool = True,
    eval_samples: int = 20000,
    log_z: Optional[float] = None,
    num_threads: Optional[int] = 1,
    init_loc: Optional[Sequence[float]] = None,
    **options,
) -> FitResult:
    """Fit ``num_layers`` steps of ``family`` (or the diagonal baseline) to ``exp(-U)`` by reverse KL with Adam.

    :param anneal_steps: if positive, ``beta`` goes linearly from 0.01 to 1 over that many steps (then stays at 1).
    :param learn_base: learn the base Gaussian's mean and scale (the setting of amortized guides); ``False`` fixes it
        to N(0, I) (the paper's 2-D experiment).
    :param num_threads: torch threads during the fit (restored afterwards). These 2-D problems (batches of a few
        hundred points) run fastest on one thread; on a busy machine, two threads made a planar fit 15-40 times
        slower (BLAS and element-wise kernels synchronising on every tiny op). ``None`` leaves the setting alone.
    :param init_loc: initial mean of the base Gaussian (default the origin). Reverse KL is mode-seeking and the
        energies are symmetric, so a diagonal Gaussian started at the origin can stay at a poor stationary point
        (on U1, a broad blob over both modes: KL 3.2 nats, against 0.9 for one started near a mode).
    :param options: options of the family (see ``FLOW_FAMILIES[family].options``).
    :return: a :class:`FitResult` with the KL estimate at beta = 1 over ``eval_samples`` fresh samples.
    """
    with torch_threads(num_threads):
        return _fit(energy_name, family, num_layers, steps, batch_size, lr, seed, anneal_steps, learn_base,
                    eval_samples, log_z, init_loc, options)


def _fit(energy_name, family, num_layers, steps, batch_size, lr, seed, anneal_steps, learn_base, eval_samples, log_z,
         init_loc, options):
    torch.manual_seed(seed)
    density = make_density(family, num_layers, learn_base=learn_base, init_loc=init_loc, **options)
    params = [p for p in density.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(steps):
        beta = min(1.0, 0.01 + 0.99 * step / anneal_steps) if anneal_steps > 0 else 1.0
        z, log_q = density.rsample_with_log_prob(batch_size, generator=g)
        loss = (log_q + beta * energy(energy_name, z)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    kl, se = kl_estimate(density, energy_name, eval_samples, log_z=log_z, seed=seed + 1)
    return FitResult(energy_name, family, 0 if family == BASELINE else num_layers, steps, kl, se, seconds, density)


def fit_energy_restarts(energy_name: str, family: str, restarts: int = 4, init_scale: float = 2.0, seed: int = 0,
                        **kwargs) -> FitResult:
    """The best of ``restarts`` fits of :func:`fit_energy`: the first with the base mean at the origin, the others at
    seeded ``N(0, init_scale^2 I)`` draws. The winner (lowest KL estimate) is re-evaluated on fresh samples, so its
    reported KL carries no selection bias. Used for the diagonal baseline, which otherwise can stay at a poor
    stationary point (see ``init_loc`` of :func:`fit_energy`)."""
    g = torch.Generator().manual_seed(seed + 1000)
    inits = [None] + [tuple((init_scale * torch.randn(2, generator=g)).tolist()) for _ in range(restarts - 1)]
    fits = [fit_energy(energy_name, family, seed=seed, init_loc=init, **kwargs) for init in inits]
    best = min(fits, key=lambda r: r.kl)
    with torch_threads(kwargs.get("num_threads", 1)):
        best.kl, best.kl_se = kl_estimate(best.density, energy_name, kwargs.get("eval_samples", 20000),
                                          log_z=kwargs.get("log_z"), seed=seed + 2)
    best.seconds = sum(r.seconds for r in fits)
    return best
