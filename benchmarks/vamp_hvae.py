"""vae and hvae, standard prior and VampPrior, on mnist5k for the same budget: the NLL table of issue 5.

Each of the four runs trains with the same data (dynamic binarization), epochs, batch size, optimiser, KL warm-up and
seed, and the same MLP widths (the paper's 300-300 with 40-dimensional latents, plain MLPs where the paper uses gated
layers); the VampPrior has K pseudo-inputs started at random training points. Then each is evaluated with the zoo's
protocol (best validation epoch, K importance samples per point, the 500 test digits). Differences are paired per
test point, so the standard error of "run - vae/standard" is that of the per-point differences.

The seed table (Tomczak & Welling 2018, dynamic MNIST, test log-likelihood) orders them
vae/standard -84.50 > vae/vamp -82.38 and hvae/standard -82.42 > hvae/vamp -81.24, i.e. the VampPrior below the
standard prior and hvae below vae in NLL. Their budget is far larger (up to 2000 epochs, early stopping, 100 epochs of
warm-up, the 50k training digits); this script says whether the ordering already holds at a small budget.

    python benchmarks/vamp_hvae.py                     # a few minutes on 2 CPU cores
    python benchmarks/vamp_hvae.py --epochs 100 --warmup 20 --samples 5000
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from inference.training import TrainConfig
from zoo.cli.runs import evaluate_run, make_config, train_run

SEED_TABLE = {  # [seed] dynamic MNIST test log-likelihood (HVAE L=2 columns for hvae), REFERENCES.md
    ("vae", "standard"): -84.50, ("vae", "vamp"): -82.38, ("hvae", "standard"): -82.42, ("hvae", "vamp"): -81.24,
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=12, help="the budget of every run")
    p.add_argument("--warmup", type=int, default=3, help="epochs of linear KL warm-up (the paper: 100)")
    p.add_argument("--samples", type=int, default=1000, help="importance samples per test point")
    p.add_argument("--pseudo-inputs", type=int, default=500, help="K of vamp:K (the paper: 500 for MNIST)")
    p.add_argument("--latent-dim", type=int, default=40, help="z of vae; z2 and z1 of hvae")
    p.add_argument("--hidden", default="300,300")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--models", default="vae,hvae")
    p.add_argument("--priors", default="standard,vamp")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1 is fastest for these widths on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="keep the run directories here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    root = args.out or tempfile.mkdtemp(prefix="vamp-hvae-")
    rows, per_point = [], {}
    for model in args.models.split(","):
        for prior_name in args.priors.split(","):
            prior = f"vamp:{args.pseudo_inputs}" if prior_name == "vamp" else prior_name
            train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                warmup=args.warmup, progress=False)
            options = {"latent_dim": args.latent_dim, "latent_dim1": args.latent_dim, "hidden": hidden,
                       "likelihood": "bernoulli", "prior": prior}
            config = make_config(model, "diagonal", "elbo", "mnist5k", "dynamic", options, train, device="cpu")
            out = os.path.join(root, f"{model}-{prior.replace(':', '')}")
            state = train_run(config, out, progress=False)
            t0 = time.perf_counter()
            ev = evaluate_run(out, args.samples, progress=False)
            eval_seconds = time.perf_counter() - t0
            key = (model, prior_name)
            per_point[key] = torch.load(os.path.join(out, "eval_points.pt"), weights_only=True)["log_px"].numpy()
            rows.append((key, prior, ev, state["wall_seconds"], eval_seconds, state["best_epoch"] + 1))
            print(f"  done {model} {prior}: NLL {ev['nll']['mean']:.2f} ({state['wall_seconds']:.0f} s training, "
                  f"{eval_seconds:.0f} s evaluation)", flush=True)

    def paired(a, b):  # mean and s.e. of NLL(a) - NLL(b) over the same test points
        d = -(per_point[a] - per_point[b])
        return d.mean(), d.std(ddof=1) / np.sqrt(len(d))

    base = rows[0][0]
    print(f"\nmnist5k (4000 train / 500 test digits, dynamic binarization), {args.epochs} epochs each "
          f"(KL warm-up {args.warmup}), batch {args.batch_size}, Adam {args.lr}, MLP {args.hidden}, latent "
          f"{args.latent_dim}, K={args.samples} importance samples, seed {args.seed}")
    print(f"{'model':<6} {'prior':<10} {'-ELBO':>14} {'NLL':>14} {f'NLL - {base[0]}/{base[1]}':>20} {'KL':>7} "
          f"{'AU':>6} {'best ep':>7} {'train s':>8} {'eval s':>7} {'seed NLL':>9}")
    for key, prior, ev, secs, esecs, best in rows:
        d, se = paired(key, base)
        au = f"{ev['active_units']}/{ev['latent_units']}" if ev["active_units"] is not None else "-"
        print(f"{key[0]:<6} {prior:<10} {ev['neg_elbo']['mean']:8.2f}+-{ev['neg_elbo']['se']:.2f} "
              f"{ev['nll']['mean']:8.2f}+-{ev['nll']['se']:.2f} {d:12.2f}+-{se:.2f}     {ev['kl']['mean']:7.2f} "
              f"{au:>6} {best:>7} {secs:8.0f} {esecs:7.0f} {-SEED_TABLE.get(key, float('nan')):9.2f}")
    print("\nordering of the seed table (lower NLL is better), paired over the test points:")
    models, priors = args.models.split(","), args.priors.split(",")
    checks = [((m, "vamp"), (m, "standard")) for m in models if "vamp" in priors and "standard" in priors]
    checks += [(("hvae", q), ("vae", q)) for q in priors if "vae" in models and "hvae" in models]
    for a, b in checks:
        d, se = paired(a, b)
        verdict = "holds" if d < -2 * se else ("reversed" if d > 2 * se else "not resolved (within 2 s.e.)")
        print(f"  {a[0]}/{a[1]} - {b[0]}/{b[1]}: {d:+.2f} +- {se:.2f} nats  (seed table "
              f"{-(SEED_TABLE[a] - SEED_TABLE[b]):+.2f}): {verdict}")
    print(f"\nrun directories: {root}")


if __name__ == "__main__":
    main()
