"""The VampPrior's diagonal-Gaussian mixture: accuracy and speed of the difference-first squared distances
(zoo.learned_priors.ScaledSquaredDistance) against the quadratic expansion z^2 p - 2 z m p + m^2 p it replaced (issue 18).

Prints, side by side for the old expression and the new one:

* the largest float32 error of log p(z) against float64, for 500 components in 40-D at |m| = 3 and s = 0.05 / 0.01,
  points next to a component;
* the time of log p(z) forward + backward for 128 points x 500 components x 40-D (the realistic VampPrior size),
* the time of log p(z) forward only for 5000 points (what an importance-sampled evaluation does, without autograd), and
* the time of one training step of vae (784-300-300, 40-D latent, vamp:500, batch 128; TraceMeanField_ELBO loss and
  backward), the old expression patched in for "old";

each time the minimum over interleaved rounds (robust to other load on the machine), and the ratio new / old.

    python benchmarks/vamp_mixture.py [--threads N] [--rounds R]
"""
import argparse
import time

import pyro
import torch

import zoo.learned_priors as LP
from zoo.learned_priors import DiagonalNormalMixture

from machine_info import machine_line  # the script's own folder is on sys.path


def expanded(z, loc, scale):
    """The old expression: two matrix products, then the clamp at 0 that hid negative values."""
    prec = scale.pow(-2)
    return (z.pow(2) @ prec.T - 2.0 * (z @ (loc * prec).T) + (loc.pow(2) * prec).sum(-1)).clamp(min=0.0)


NEW = LP.ScaledSquaredDistance


def difference_first(z, loc, scale):
    return NEW.apply(z, loc, scale)


class use:
    """Route DiagonalNormalMixture through ``fn`` (what it calls as ``ScaledSquaredDistance.apply``) for a while."""

    def __init__(self, fn):
        self.shim = type("Shim", (), {"apply": staticmethod(fn)})

    def __enter__(self):
        LP.ScaledSquaredDistance = self.shim

    def __exit__(self, *exc):
        LP.ScaledSquaredDistance = NEW


def problem(s, n=128, k=500, d=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = 3.0 * (2.0 * torch.randint(0, 2, (k, d), generator=g).double() - 1.0)
    scale = s * torch.exp(0.1 * torch.randn(k, d, generator=g, dtype=torch.float64))
    z = loc[torch.randint(k, (n,), generator=g)] + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    logits = torch.zeros(k, dtype=torch.float64)
    return z, loc, scale, logits


def accuracy(s):
    z, loc, scale, logits = problem(s)
    ref = torch.logsumexp(torch.distributions.Normal(loc, scale).log_prob(z[:, None, :]).sum(-1)
                          + torch.log_softmax(logits, -1), -1)
    errors = []
    for fn in (expanded, difference_first):
        with use(fn):
            lp = DiagonalNormalMixture(logits.float(), loc.float(), scale.float()).log_prob(z.float())
        errors.append(float((lp.double() - ref).abs().max()))
    return errors


def best_of(fns, rounds, reps):
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t) / reps)
    return best


def mixture_timing(rounds):
    z, loc, scale, logits = (t.float().requires_grad_() for t in problem(0.01))

    def run(fn):
        def once():
            with use(fn):
                DiagonalNormalMixture(logits, loc, scale).log_prob(z).sum().backward()
        return once

    return best_of([run(expanded), run(difference_first)], rounds, reps=10)


def evaluation_timing(rounds):
    z, loc, scale, logits = (t.float() for t in problem(0.01, n=5000))

    def run(fn):
        def once():
            with use(fn), torch.no_grad():
                DiagonalNormalMixture(logits, loc, scale).log_prob(z)
        return once

    return best_of([run(expanded), run(difference_first)], rounds, reps=2)


def training_step_timing(rounds):
    from guides.base import build_guide
    from zoo.vae import VAE

    torch.manual_seed(0)
    model = VAE(784, latent_dim=40, hidden=(300, 300), prior="vamp:500")
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(128, 784))
    model.prior.init_from_data(x.repeat(4, 1))
    elbo = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1)
    params = list(model.parameters()) + list(guide.parameters())

    def run(fn):
        def once():
            with use(fn):
                for p in params:
                    p.grad = None
                elbo.differentiable_loss(model, guide, x).backward()
        return once

    return best_of([run(expanded), run(difference_first)], rounds, reps=3)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    print(machine_line(), flush=True)  # what the figures below were measured on
    print(f"{'':58s} {'old (expanded)':>15s} {'new (diff first)':>17s} {'new / old':>10s}")
    for s in (0.05, 0.01):
        old, new = accuracy(s)
        print(f"{'max |log p error| float32 vs float64, |m| = 3, s = ' + str(s):58s} {old:15.2e} {new:17.2e}")
    old, new = mixture_timing(args.rounds)
    print(f"{'log p fwd+bwd, 128 x 500 components x 40-D (ms)':58s} {old * 1e3:15.2f} {new * 1e3:17.2f} "
          f"{new / old:10.2f}")
    old, new = evaluation_timing(max(3, args.rounds // 3))
    print(f"{'log p forward only, 5000 x 500 components x 40-D (ms)':58s} {old * 1e3:15.2f} {new * 1e3:17.2f} "
          f"{new / old:10.2f}")
    old, new = training_step_timing(max(3, args.rounds // 3))
    print(f"{'training step, vae 784-300-300-40, vamp:500, batch 128 (ms)':58s} {old * 1e3:15.2f} {new * 1e3:17.2f} "
          f"{new / old:10.2f}")


if __name__ == "__main__":
    main()
