"""mvae on mnist5k-colour with the product-of-experts guide (poe, Wu & Goodman 2018) and the mixture-of-experts guide
(moe, Shi et al. 2019), same budget: the joint, marginal and conditional test NLLs of issue 14.

Both runs read the same 4000/500/500 colour/grey digit pairs (grey levels, Gaussian likelihoods with sigma 0.1 per
pixel, so the NLLs are in nats of a density and may be negative), train with the sub-sampled objective
(``mvae-subsampled``: joint ELBO + each unimodal ELBO) for the same epochs, batch size, optimiser and seed, and are
evaluated with the zoo's protocol (best validation epoch, K importance samples per test pair):

* joint    -log p(colour, grey)              q(z | both)
* marginal -log p(colour), -log p(grey)      the other modality masked: q(z | one), p(x_m | z)
* conditional -log p(grey | colour) = -[log p(colour, grey) - log p(colour)] (and the reverse): the difference of the
  two importance-sampled estimates.

``--missing P`` trains on mnist5k-colour:P (one modality dropped from a fraction P of the training pairs).

    python benchmarks/mvae_mnist_colour.py                        # small budget, minutes on 2 CPU cores
    python benchmarks/mvae_mnist_colour.py --epochs 50 --samples 5000
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
    p.add_argument("--samples", type=int, default=500, help="importance samples per test pair")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="256", help="each expert's and decoder's MLP widths")
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--missing", type=float, default=0.0, help="fraction of training pairs that lose one modality")
    p.add_argument("--guides", default="poe,moe")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    args = p.parse_args()
    from machine_info import machine_line
    from zoo.cli.assemble import resolve_device

    print(machine_line(resolve_device(args.device)), flush=True)  # what the figures below were measured on
    out = args.out or tempfile.mkdtemp(prefix="mvae-colour-")
    data = "mnist5k-colour" + (f":{args.missing}" if args.missing else "")
    options = {"latent_dim": args.latent, "hidden": [int(h) for h in args.hidden.split(",")], "likelihood": "gaussian"}
    results = {}
    for guide in args.guides.split(","):
        run = os.path.join(out, guide)
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=0, progress=False)
        t0 = time.perf_counter()
        train_run(make_config("mvae", guide, "mvae-subsampled", data, "none", options, cfg, device=args.device), run,
                  progress=False, overwrite=True)
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        summary = evaluate_run(run, num_samples=args.samples, progress=False, quality_samples=0)
        eval_seconds = time.perf_counter() - t1
        points = torch.load(os.path.join(run, "eval_points.pt"), weights_only=True)
        results[guide] = (summary, -points["log_px"].double().numpy(), seconds, eval_seconds)
        print(f"mvae + {guide} on {data}: trained {args.epochs} epochs in {seconds:.0f} s, evaluated in "
              f"{eval_seconds:.0f} s", flush=True)
    print(f"\ntest NLL, nats per pair (K={args.samples}, 500 test pairs, grey levels, Gaussian sigma 0.1, best "
          f"validation epoch of {args.epochs})")
    cols = ["joint", "-ELBO", "colour", "grey", "grey|colour", "colour|grey"]
    print(f"{'guide':<6}" + "".join(f"{c:>20}" for c in cols) + f"{'train s':>9}{'eval s':>8}")
    for guide, (s, _, seconds, eval_seconds) in results.items():
        mm = s["multimodal"]
        values = [s["nll"], s["neg_elbo"], mm["marginal_nll"]["colour"], mm["marginal_nll"]["grey"],
                  mm["conditional_nll"]["grey|colour"], mm["conditional_nll"]["colour|grey"]]
        print(f"{guide:<6}" + "".join(f"{v['mean']:12.1f} +- {v['se']:4.1f}" for v in values)
              + f"{seconds:9.0f}{eval_seconds:8.0f}")
    if {"poe", "moe"} <= set(results):
        diff = results["moe"][1] - results["poe"][1]
        print(f"joint NLL moe - poe: {diff.mean():+.2f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.2f} nats per pair "
              f"(paired)")


if __name__ == "__main__":
    main()
