"""Flow density models on mnist5k (8-bit grey levels, dequantized): the test bits/dim table of issue 7.

Each model (nice, maf, realnvp, glow) is built exactly as ``zoo train --model M --data mnist5k --binarize none`` builds
it (same registries, empty guide ``none``, objective ``elbo`` = -log p(v) exactly), then trained with Adam for the same
wall-clock budget (``--seconds`` per model; ``--epochs N`` instead gives every model N epochs), fresh dequantization
noise at every step, and evaluated on the 500 test digits with the zoo's protocol (``importance_sample``, K = 1: exact
for models without latents; fixed seeded dequantization) -- bits/dim = -log p(v) / (784 ln 2) + 8, logit Jacobian
included. The networks are the CPU sizes of ``SIZES`` (smaller than the models' defaults, far smaller than the papers').

    python benchmarks/flow_density.py                    # 60 s per model, about 5 minutes on one busy core
    python benchmarks/flow_density.py --seconds 300 --models glow,maf

The published MNIST numbers (REFERENCES.md, [recalled]: full MNIST, 60000 training digits, days of GPU training)
are printed beside them for orientation, not as a target this budget can reach.
"""
import argparse
import time

import numpy as np
import pyro
import torch

from inference.evaluation import importance_sample, summarize
from inference.training import TrainConfig, config_dict, make_optimizer, unique_parameters
from zoo.cli.assemble import build_components

#: architectures trained by the benchmark (model options as the CLI passes them)
SIZES = {
    "nice": {"hidden": [500, 500, 500], "flow_depth": 4},
    "maf": {"hidden": [800], "flow_depth": 5},
    "realnvp": {"hidden": [16], "flow_depth": 2, "num_scales": 2, "num_blocks": 0},
    "glow": {"hidden": [32], "flow_depth": 4, "num_scales": 2, "num_blocks": 0},
}
#: REFERENCES.md, "Flow density models" [recalled]; NICE's 1980.50 nats on [0,1]^784 -> -1980.5/(784 ln 2) + 8
PUBLISHED = {"nice": "4.36 (1980.50 nats)", "maf": "1.89", "realnvp": "1.06", "glow": "1.05"}


def config_for(model, seed, batch_size, lr):
    return {"model": {"name": model, "options": dict(SIZES[model])}, "guide": "none", "objective": "elbo",
            "data": {"name": "mnist5k", "binarize": "none", "root": None},
            "train": config_dict(TrainConfig(batch_size=batch_size, lr=lr, seed=seed, progress=False)),
            "device": "cpu"}


def train_and_evaluate(model_name, args):
    pyro.set_rng_seed(args.seed)
    comps = build_components(config_for(model_name, args.seed, args.batch_size, args.lr), torch.device("cpu"))
    model, guide, objective, data = comps.model, comps.guide, comps.objective, comps.data
    model.check_data(data.train.x, "the training split")
    params = unique_parameters(model, guide)
    opt = make_optimizer(params, args.lr)
    n = len(data.train)
    gen = torch.Generator().manual_seed(args.seed)
    steps, epoch, t0 = 0, 0, time.perf_counter()
    model.train()
    done = False
    while not done:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, args.batch_size):
            xb = data.train.x[perm[start:start + args.batch_size]]
            loss = objective.loss(model, guide, xb) / xb.shape[0]  # -log p(v) per point, fresh dequantization
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.clip)
            opt.step()
            steps += 1
            if args.epochs is None and time.perf_counter() - t0 >= args.seconds:
                done = True
                break
        epoch += 1
        if args.epochs is not None and epoch >= args.epochs:
            done = True
    train_s = time.perf_counter() - t0
    model.eval()
    samples = importance_sample(model, guide, data.test.x, None, num_samples=1, batch_size=100)
    summary = summarize(samples, 1, data.dim, pixels=True, dequantization_bins=model.dequantization_bins)
    n_params = sum(p.numel() for p in params)
    return {"model": model_name, "bpd": summary["bits_per_dim"], "nll": summary["nll"], "steps": steps,
            "epochs": steps * args.batch_size / n, "seconds": train_s, "params": n_params, "comps": comps}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="nice,maf,realnvp,glow")
    p.add_argument("--seconds", type=float, default=60.0, help="training budget per model (wall clock)")
    p.add_argument("--epochs", type=int, default=None, help="train every model for N epochs instead of --seconds")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip", type=float, default=100.0, help="gradient-norm clipping")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figures", default=None, metavar="DIR", help="also write each model's flow figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    pyro.enable_validation(False)
    rows = []
    for name in args.models.split(","):
        r = train_and_evaluate(name, args)
        rows.append(r)
        print(f"  done {name}: {r['bpd']['mean']:.3f} bits/dim after {r['steps']} steps ({r['seconds']:.0f} s)",
              flush=True)
        if args.figures:
            import os

            from reports.flow_figures import flow_figures

            flow_figures(r["comps"].model, r["comps"].data, os.path.join(args.figures, name))
    budget = f"{args.epochs} epochs" if args.epochs is not None else f"{args.seconds:g} s"
    print(f"\nmnist5k (4000 train / 500 test digits, 8-bit, uniform dequantization), {budget} of Adam "
          f"(lr {args.lr:g}, batch {args.batch_size}) per model, {args.threads} CPU thread(s), seed {args.seed}; "
          f"test log-likelihood exact (K=1), fixed seeded dequantization")
    header = f"| {'model':<8} | {'params':>7} | {'steps':>6} | {'epochs':>6} | {'test NLL (nats)':>17} | " \
             f"{'test bits/dim':>16} | {'published MNIST bits/dim':>24} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        bpd, nll = r["bpd"], r["nll"]
        print(f"| {r['model']:<8} | {r['params'] / 1e6:6.2f}M | {r['steps']:>6} | {r['epochs']:>6.1f} | "
              f"{nll['mean']:9.1f} +- {nll['se']:4.1f} | {bpd['mean']:7.3f} +- {bpd['se']:.3f} | "
              f"{PUBLISHED.get(r['model'], '-'):>24} |")
    assert all(np.isfinite(r["bpd"]["mean"]) for r in rows)
    print("NLL: -log p(v) of the dequantized data in [0,1]^784 (negative: a density above 1); "
          "bits/dim = NLL/(784 ln 2) + 8. Published: full MNIST, REFERENCES.md [recalled].")


if __name__ == "__main__":
    main()
