"""vrnn on mnist5k-rows against a vae on the flattened digits (mnist5k), same budget: the test NLL of issue 14.

Both read the same 4000/500/500 digits with the same dynamic binarization (mnist5k-rows is mnist5k read row by row:
28 steps of 28 pixels, its splits, labels and seeded bits), train for the same epochs, batch size, optimiser and seed,
and are evaluated with the zoo's protocol (best validation epoch, K importance samples per test digit). The vrnn's
log p(x_<=28) of a digit is the log-likelihood of the same 784 pixels as the vae's log p(x), so the two NLLs (nats per
digit) compare directly; the difference is paired per test digit.

Chung et al. 2015 do not report MNIST rows; the point is the zoo's sequence machinery on the default sequence data,
beside the flat model it should at least approach.

    python benchmarks/vrnn_mnist_rows.py                        # small budget, minutes on 2 CPU cores
    python benchmarks/vrnn_mnist_rows.py --epochs 50 --samples 5000
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from inference.training import TrainConfig
from zoo.cli.runs import evaluate_run, make_config, train_run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5, help="the budget of both runs")
    p.add_argument("--samples", type=int, default=500, help="importance samples per test digit")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--vrnn-hidden", type=int, default=128, help="vrnn's GRU state and network width")
    p.add_argument("--vrnn-latent", type=int, default=16, help="vrnn's z per step")
    p.add_argument("--vae-hidden", default="400", help="vae's MLP widths")
    p.add_argument("--vae-latent", type=int, default=20)
    p.add_argument("--guide", default="vrnn", help="vrnn's guide (vrnn, filtering, smoothing)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="folder for the two runs (default: a temporary one)")
    args = p.parse_args()
    from machine_info import machine_line
    from zoo.cli.assemble import resolve_device

    print(machine_line(resolve_device(args.device)), flush=True)  # what the figures below were measured on
    out = args.out or tempfile.mkdtemp(prefix="vrnn-rows-")
    systems = [("vae", "diagonal", "mnist5k", {"latent_dim": args.vae_latent,
                                               "hidden": [int(h) for h in args.vae_hidden.split(",")],
                                               "likelihood": "bernoulli"}),
               ("vrnn", args.guide, "mnist5k-rows", {"latent_dim": args.vrnn_latent, "hidden": [args.vrnn_hidden],
                                                     "likelihood": "bernoulli"})]
    results = {}
    for model, guide, data, options in systems:
        run = os.path.join(out, model)
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=0, progress=False)
        t0 = time.perf_counter()
        train_run(make_config(model, guide, "elbo", data, "dynamic", options, cfg, device=args.device), run,
                  progress=False, overwrite=True)
        seconds = time.perf_counter() - t0
        summary = evaluate_run(run, num_samples=args.samples, progress=False, quality_samples=0)
        points = torch.load(os.path.join(run, "eval_points.pt"), weights_only=True)
        results[model] = (summary, -points["log_px"].double().numpy(), seconds)
        print(f"{model:<5} ({guide}, {data}): trained {args.epochs} epochs in {seconds:.0f} s", flush=True)
    print(f"\ntest NLL, nats per digit (K={args.samples}, 500 test digits, dynamic binarization, best validation "
          f"epoch of {args.epochs})")
    print(f"{'model':<8} {'NLL':>16} {'-ELBO':>16} {'NLL/step (28 rows)':>20} {'train s':>8}")
    for model, (s, _, seconds) in results.items():
        per_step = s.get("nll_per_step", {"mean": s["nll"]["mean"] / 28, "se": s["nll"]["se"] / 28})
        print(f"{model:<8} {s['nll']['mean']:9.2f} +- {s['nll']['se']:.2f} {s['neg_elbo']['mean']:9.2f} +- "
              f"{s['neg_elbo']['se']:.2f} {per_step['mean']:13.3f} +- {per_step['se']:.3f} {seconds:8.0f}")
    diff = results["vrnn"][1] - results["vae"][1]
    print(f"vrnn - vae: {diff.mean():+.2f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.2f} nats per digit (paired)")


if __name__ == "__main__":
    main()
