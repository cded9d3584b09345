r"""Fitting one Gaussian to a mixture by each f-divergence: adversarial f-GAN training against the exact minimiser.

Nowozin, Cseke & Tomioka (2016, Section 4) fit a Gaussian :math:`Q_\theta = N(\mu, \sigma^2)` to a one-dimensional
mixture of Gaussians P, by variational divergence minimisation with each f-divergence, and compare the learned
:math:`(\hat\mu, \hat\sigma)` with the best fit :math:`\theta^* = \arg\min_\theta D_f(P \| Q_\theta)`. Their mixture's
parameters were not at hand when this was written, so P here is a standard two-component choice with unequal weights
(so that the mode-seeking divergences have one best mode, not two mirror-image ones):

    :math:`P = 0.3\,N(-2.5, 0.75^2) + 0.7\,N(2, 0.75^2)`.

For each divergence (:mod:`inference.f_divergences`):

(a) the exact minimiser :math:`(\mu^*, \sigma^*)`: :math:`D_f(P \| Q_\theta)` by Simpson quadrature in float64
    (:func:`~inference.f_divergences.exact_divergence_1d`, differentiable in :math:`\mu, \log\sigma`), minimised by
    L-BFGS from several starts (the best is kept);
(b) adversarial training: a generator :math:`x = \mu + \sigma\epsilon`, :math:`\epsilon \sim N(0, 1)`, started at
    :math:`(0, 1)`, and a critic V, a tanh MLP on the features :math:`(x, x^2/4)` (two hidden layers of 64), trained
    with the two-player saddle point of their eq. 6: after 200 critic-only warm-up steps, one Adam step of the critic on
    ``critic_loss(V(x_P), V(x_Q))`` alternates with one Adam step of the generator on ``generator_loss(V(x_Q))`` (or,
    with ``--trick``, their Section 3.2 alternative), fresh samples each step, the generator's learning rate decaying
    along a half cosine to 10 %; the reported :math:`(\hat\mu, \hat\sigma)` average the generator over the last
    quarter of the steps.

Printed: divergence, learned :math:`\hat\mu, \hat\sigma`, exact :math:`\mu^*, \sigma^*`, the exact :math:`D_f` at
both, and the seconds of the adversarial run; where L-BFGS started at the generator's own start :math:`(0, 1)` ends in
another local minimum than the best one, that local minimum is printed after the row (the saddle-point dynamics may
follow it). ``kl`` covers both modes (moment matching: :math:`\mu^* = E_P x`, :math:`\sigma^{*2} = Var_P x`),
``reverse-kl`` sits on the heavier mode.

What it showed (seed 0, 3000 steps): the generator lands on the exact minimiser (within 0.03 in mu and sigma, D_f
within 0.001) for kl, reverse-kl, pearson, neyman, jensen-shannon-weighted:0.3 and alpha at 0.5, 2 and -1, and within
0.04 for squared-hellinger; jensen-shannon and gan land on the covering local minimum (0.68, 2.15) that L-BFGS also
reaches from (0, 1) (the global one sits on the heavier mode); jeffrey stays too wide (sigma 2.13 against 1.95, D_f
1.381 against 1.335, the same with critic lr 3e-3, generator lr 5e-3 or 6000 steps: the critic's optimum there,
1 + log u - 1/u, is steep where q >> p, few samples fall there and f* grows only like log there, so the critic
under-fits it and the generator feels too little of the reverse-KL half); total-variation diverges (sigma -> 47):
its optimal critic is the step +-1/2, flat wherever p != q, so the generator is pushed only at the crossings, spreads
as every mode-seeking divergence first does from (0, 1), and never feels the pull back.

    python benchmarks/fgan_gaussian_mixture.py                    # all 11 (alpha at 0.5, 2, -1), 3000 steps each
    python benchmarks/fgan_gaussian_mixture.py --divergences kl reverse-kl alpha:2 --steps 1500
"""
import argparse
import math
import os
import sys
import time
from typing import Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from inference.f_divergences import build_divergence, exact_divergence_1d  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

WEIGHTS = (0.3, 0.7)
MEANS = (-2.5, 2.0)
SCALES = (0.75, 0.75)
DIVERGENCES = ["total-variation", "kl", "reverse-kl", "pearson", "neyman", "squared-hellinger", "jeffrey",
               "jensen-shannon", "jensen-shannon-weighted:0.3", "gan", "alpha:0.5", "alpha:2", "alpha:-1"]
#: the quadrature interval and grid of the exact D_f: P and every candidate Q are negligible beyond it
LO, HI, GRID = -16.0, 16.0, 8001


def mixture(dtype=torch.float32) -> torch.distributions.Distribution:
    """The target P, a mixture of Gaussians."""
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.tensor(WEIGHTS, dtype=dtype)),
        torch.distributions.Normal(torch.tensor(MEANS, dtype=dtype), torch.tensor(SCALES, dtype=dtype)))


def sample_mixture(n: int) -> torch.Tensor:
    """n draws of P (float32): a component by its weight, then its Gaussian (cheaper than MixtureSameFamily.sample)."""
    second = torch.rand(n) < WEIGHTS[1]
    eps = torch.randn(n)
    return torch.where(second, MEANS[1] + SCALES[1] * eps, MEANS[0] + SCALES[0] * eps)


def mixture_moments() -> Tuple[float, float]:
    """Mean and standard deviation of P: the kl minimiser."""
    mean = sum(w * m for w, m in zip(WEIGHTS, MEANS))
    second = sum(w * (s * s + m * m) for w, m, s in zip(WEIGHTS, MEANS, SCALES))
    return mean, math.sqrt(second - mean * mean)


def exact_divergence(div, mu, log_sigma) -> torch.Tensor:
    """D_f(P || N(mu, sigma^2)) by quadrature in float64, differentiable in mu and log_sigma."""
    p = mixture(torch.float64)
    mu = torch.as_tensor(mu, dtype=torch.float64)
    sigma = torch.exp(torch.as_tensor(log_sigma, dtype=torch.float64))
    q = torch.distributions.Normal(mu, sigma)
    return exact_divergence_1d(div, p.log_prob, q.log_prob, LO, HI, GRID)


def local_minimiser(div, start: Tuple[float, float]):
    """(mu, sigma, D_f) where L-BFGS on (mu, log sigma) from ``start`` stops; None where D_f is infinite there."""
    div = build_divergence(div)
    theta = torch.tensor([start[0], math.log(start[1])], dtype=torch.float64, requires_grad=True)
    if not torch.isfinite(exact_divergence(div, theta[0], theta[1])):
        return None
    opt = torch.optim.LBFGS([theta], lr=1, max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        value = exact_divergence(div, theta[0], theta[1])
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        value = exact_divergence(div, theta[0], theta[1]).item()
    return (theta[0].item(), math.exp(theta[1].item()), value) if math.isfinite(value) else None


STARTS = ((0.0, 1.0), (MEANS[0], SCALES[0]), (MEANS[1], SCALES[1]), (0.5, 2.0), (0.5, 0.5))


def exact_minimiser(div, starts: Sequence[Tuple[float, float]] = STARTS, with_first: bool = False):
    """(mu*, sigma*, D_f at the minimum): the best of :func:`local_minimiser` over the starts (and, with
    ``with_first``, also where the first start's run stopped)."""
    found = [local_minimiser(div, s) for s in starts]
    best = min((r for r in found if r is not None), key=lambda r: r[2])
    return (best, found[0]) if with_first else best


class Critic(nn.Module):
    """V: R -> R, a tanh MLP on the features (x, x^2/4) (the log-ratio of two Gaussians is quadratic in x, so a critic
    of this family starts close to the optimal one, f'(p/q) through the inverse activation)."""

    def __init__(self, hidden: int = 64, layers: int = 2):
        super().__init__()
        mods, width = [], 2
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        self.net = nn.Sequential(*mods, nn.Linear(width, 1))

    def forward(self, x):
        return self.net(torch.stack([x, x * x / 4], -1)).squeeze(-1)


def adversarial_fit(div, steps: int = 3000, batch: int = 512, seed: int = 0, init=(0.0, 1.0), critic_lr=1e-2,
                    generator_lr=2e-2, hidden: int = 64, layers: int = 2, warmup: int = 200, trick: bool = False,
                    average_last: float = 0.25):
    """Two-player f-GAN training of x = mu + sigma eps against P, one critic Adam step per generator Adam step after
    ``warmup`` critic-only steps; the generator's learning rate decays along a half cosine to 10 %.

    Returns (mu, sigma, seconds): the generator's parameters averaged over the last ``average_last`` of the steps;
    NaN for both where training diverged (a non-finite generator)."""
    div = build_divergence(div)
    torch.manual_seed(seed)
    critic = Critic(hidden, layers)
    mu = torch.tensor(float(init[0]), requires_grad=True)
    log_sigma = torch.tensor(math.log(init[1]), requires_grad=True)
    opt_c = torch.optim.Adam(critic.parameters(), lr=critic_lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam([mu, log_sigma], lr=generator_lr, betas=(0.5, 0.999))
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, steps, eta_min=0.1 * generator_lr)
    tail = max(1, int(steps * average_last))
    sums = [0.0, 0.0]

    def critic_step():
        x_p = sample_mixture(batch)
        x_q = (mu + torch.exp(log_sigma) * torch.randn(batch)).detach()
        v = critic(torch.cat([x_p, x_q]))  # one pass over both halves
        loss = div.critic_loss(v[:batch], v[batch:])
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()

    t0 = time.perf_counter()
    for _ in range(warmup):
        critic_step()
    for step in range(steps):
        critic_step()
        x_q = mu + torch.exp(log_sigma) * torch.randn(batch)
        loss = div.generator_loss(critic(x_q), trick=trick)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        decay.step()
        if not (torch.isfinite(mu) and torch.isfinite(log_sigma)):
            return math.nan, math.nan, time.perf_counter() - t0
        if step >= steps - tail:
            sums[0] += mu.item()
            sums[1] += math.exp(log_sigma.item())
    return sums[0] / tail, sums[1] / tail, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--divergences", nargs="+", default=DIVERGENCES)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trick", action="store_true", help="the generator maximises E_Q[g_f(V)] (Section 3.2)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    m, s = mixture_moments()
    print(f"P = {WEIGHTS[0]} N({MEANS[0]}, {SCALES[0]}^2) + {WEIGHTS[1]} N({MEANS[1]}, {SCALES[1]}^2) "
          f"(mean {m:.4f}, sd {s:.4f}); Q = N(mu, sigma^2) from (0, 1); {args.steps} alternating Adam steps, "
          f"batch {args.batch}, critic tanh MLP (x, x^2/4)-64-64-1, generator loss "
          f"{'-E_Q[g_f(V)] (trick)' if args.trick else '-E_Q[f*(g_f(V))]'}, seed {args.seed}; {cpu_name()}, "
          f"{args.threads} thread(s)")
    header = f"{'divergence':28s} {'mu':>8s} {'sigma':>8s} {'mu*':>8s} {'sigma*':>8s} {'D_f(learned)':>13s} " \
             f"{'D_f(exact)':>11s} {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for spec in args.divergences:
        (mu_star, sigma_star, d_star), local = exact_minimiser(spec, with_first=True)  # STARTS[0] = (0, 1)
        mu, sigma, seconds = adversarial_fit(spec, steps=args.steps, batch=args.batch, seed=args.seed,
                                             trick=args.trick)
        d_learned = exact_divergence(spec, mu, math.log(sigma)).item() if math.isfinite(mu) else math.nan
        print(f"{spec:28s} {mu:8.4f} {sigma:8.4f} {mu_star:8.4f} {sigma_star:8.4f} {d_learned:13.4f} "
              f"{d_star:11.4f} {seconds:8.1f}", flush=True)
        if local is not None and abs(local[0] - mu_star) + abs(local[1] - sigma_star) > 0.05:
            print(f"{'':28s} local minimum from (0, 1): mu {local[0]:.4f}, sigma {local[1]:.4f}, D_f {local[2]:.4f}")


if __name__ == "__main__":
    main()
