"""VAE on mnist5k with the diagonal guide and every flow guide, for the same budget: the NLL table of issue 4.

Every guide registered with a ``:K`` argument (the flow families) is trained with K steps, the same network, data,
epochs, seed and optimiser as `diagonal`, then evaluated with the zoo's protocol (best validation epoch, K importance
samples, the 500 test digits). Differences are paired per test point, so the standard error of "guide - diagonal"
is that of the per-point differences.

    python benchmarks/posterior_flows.py --epochs 40 --flow-steps 4 --samples 1000
"""
import argparse
import os
import tempfile

import numpy as np
import torch

import guides.flows  # noqa: F401
from guides.base import GUIDES
from inference.training import TrainConfig
from zoo.cli.runs import evaluate_run, make_config, train_run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--flow-steps", type=int, default=4)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--guides", default="", help="comma-separated subset (default: diagonal and every flow guide)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="keep the run directories here")
    args = p.parse_args()
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    names = args.guides.split(",") if args.guides else ["diagonal"] + [e.name for e in GUIDES if e.arg == "K"]
    root = args.out or tempfile.mkdtemp(prefix="posterior-flows-")
    rows, per_point = [], {}
    for name in names:
        spec = name if GUIDES.entry(name).arg is None else f"{name}:{args.flow_steps}"
        train = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=args.seed, progress=False)
        config = make_config("vae", spec, "elbo", "mnist5k", "dynamic",
                             {"latent_dim": args.latent_dim, "hidden": [400], "likelihood": "bernoulli"}, train,
                             device="cpu")
        out = os.path.join(root, spec.replace(":", "-"))
        state = train_run(config, out, progress=False)
        ev = evaluate_run(out, args.samples, progress=False)
        per_point[spec] = torch.load(os.path.join(out, "eval_points.pt"), weights_only=True)["log_px"].numpy()
        rows.append((spec, ev, state["wall_seconds"]))
        print(f"  done {spec}: NLL {ev['nll']['mean']:.2f}", flush=True)
    base = per_point[rows[0][0]]
    print(f"\nvae on mnist5k (dynamic binarization), {args.epochs} epochs, latent {args.latent_dim}, "
          f"K={args.samples} importance samples, 500 test digits")
    print(f"{'guide':<16} {'-ELBO':>14} {'NLL':>14} {'NLL - diag':>15} {'KL':>7} {'AU':>4} {'k>0.7':>6} {'train s':>8}")
    for spec, ev, secs in rows:
        diff = -(per_point[spec] - base)
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        print(f"{spec:<16} {ev['neg_elbo']['mean']:8.2f}+-{ev['neg_elbo']['se']:.2f} "
              f"{ev['nll']['mean']:8.2f}+-{ev['nll']['se']:.2f} {diff.mean():8.2f}+-{se:.2f} "
              f"{ev['kl']['mean']:7.2f} {ev['active_units']:>4} {ev['psis']['share_khat_above_0.7']:6.2f} {secs:8.1f}")
    print(f"\nrun directories: {root}")


if __name__ == "__main__":
    main()
