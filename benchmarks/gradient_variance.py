"""Gradient variance of the better-gradient objectives beside their references, on a briefly trained model.

Trains the zoo's vae (MLP 784-400-20 by default, Bernoulli) with a guide (``diagonal`` by default) on mnist5k for a
few epochs with iwae:K, then draws the gradient of each objective R times on one fixed mini-batch of test digits
(fresh particles each draw) and prints, per parameter group (the guide's encoder body, its output heads / flow
hypernetworks, the model's decoder, ...), the total variance (sum over coordinates of the per-coordinate variance of
the mini-batch-mean gradient), and the ratio to the reference:

    iwae-dreg:K / iwae:K    (Tucker et al. 2019: lower guide variance, the same estimator for the model)
    stl / iwae:1            (Roeder et al. 2017: the path derivative beside the Monte Carlo ELBO's gradient)
    stl / elbo              (beside the analytic-KL ELBO the zoo trains with by default)

The guide groups are where the estimators differ; the model's should stay near 1 (same estimator, independent draws).
It also prints the squared norm of the mean gradient per group (signal), so a variance ratio can be read beside it.

    python benchmarks/gradient_variance.py                      # K=64, 3 epochs, 50 draws, 16 digits
    python benchmarks/gradient_variance.py --guide planar:4 --data digits --latent-dim 8 --hidden 64
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyro  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import machine_line  # noqa: E402


def trained(args):
    from inference.training import TrainConfig
    from zoo.cli.assemble import load_run
    from zoo.cli.runs import make_config, train_run

    cfg = make_config("vae", args.guide, f"iwae:{args.train_k}", args.data, "dynamic",
                      {"latent_dim": args.latent_dim, "hidden": [args.hidden], "likelihood": "bernoulli"},
                      TrainConfig(epochs=args.epochs, batch_size=100, lr=1e-3, seed=0, progress=False), device="cpu")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train_run(cfg, out, progress=False)
        seconds = time.perf_counter() - t0
        comps = load_run(out, torch.device("cpu"))
    return comps, seconds


def groups(model, guide):
    """name -> parameters: the guide's and the model's parameters split by their top-level sub-module."""
    out = {}
    for owner, module in (("guide", guide), ("model", model)):
        for name, p in module.named_parameters():
            top = name.split(".")[0]
            out.setdefault(f"{owner}.{top}", []).append(p)
    return out


def draws(objective_spec, model, guide, x, reps, seed, named):
    from inference.objectives import build_objective

    objective = build_objective(objective_spec)
    params = [p for ps in named.values() for p in ps]
    out = []
    for r in range(reps):
        pyro.set_rng_seed(seed * 7919 + r)
        loss = objective.loss(model, guide, x) / x.shape[0]
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        out.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs)]))
    g = torch.stack(out).double()
    stats, start = {}, 0
    for name, ps in named.items():
        n = sum(p.numel() for p in ps)
        part = g[:, start:start + n]
        stats[name] = (part.var(0).sum().item(), part.mean(0).pow(2).sum().item())
        start += n
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--guide", default="diagonal")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--train-k", type=int, default=8, help="K of the iwae:K objective the model is trained with")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--points", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from zoo.cli.assemble import register_all

    register_all()
    comps, train_s = trained(args)
    model, guide = comps.model, comps.guide
    model.eval(), guide.eval()
    x = comps.data.test.x[:args.points]
    named = groups(model, guide)
    print(machine_line(), flush=True)  # what the figures below were measured on
    print(f"vae + {args.guide} on {args.data}: latent {args.latent_dim}, hidden {args.hidden}, trained {args.epochs} "
          f"epochs with iwae:{args.train_k} ({train_s:.1f} s); gradients of the mean over {args.points} test points, "
          f"{args.reps} draws each")
    pairs = [(f"iwae-dreg:{args.k}", f"iwae:{args.k}"), ("stl", "iwae:1"), ("stl", "elbo")]
    cache = {}
    for ours, ref in pairs:
        for spec in (ours, ref):
            if spec not in cache:
                t0 = time.perf_counter()
                cache[spec] = (draws(spec, model, guide, x, args.reps, seed=len(cache) + 1, named=named),
                               (time.perf_counter() - t0) / args.reps)
        a, ta = cache[ours]
        b, tb = cache[ref]
        print(f"\n{ours} vs {ref}   (seconds per gradient: {ta:.3f} vs {tb:.3f})")
        print(f"  {'group':<22}{'var ' + ours:>20}{'var ' + ref:>20}{'ratio':>10}{'|mean|^2':>12}")
        for name in named:
            (va, ma), (vb, _) = a[name], b[name]
            ratio = va / vb if vb > 0 else float("nan")
            print(f"  {name:<22}{va:>20.4g}{vb:>20.4g}{ratio:>10.3f}{ma:>12.4g}")


if __name__ == "__main__":
    main()
