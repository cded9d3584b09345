"""Fit every non-amortized posterior flow family (and a diagonal Gaussian) to the energies U1-U4 of Rezende & Mohamed
(2015, Table 1 / Figure 3) by reverse KL; print KL(q || p) per family and energy, and draw the densities.

    python benchmarks/energy_fit.py                      # all families, 16 layers, 2000 steps
    python benchmarks/energy_fit.py --layers 32 --steps 5000 --anneal 1000 --families planar,radial

KL(q || p) = E_q[log q(z) + U(z)] + log Z, with log Z by numerical integration on a fine grid and the expectation over
fresh samples (its Monte-Carlo standard error is printed too). Writes OUT/energy_fits.png (rows: energies; columns: the
true density, then each family's density as a histogram of its samples, on the paper's window [-4, 4]^2) and
OUT/energy_fits.md (the table).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from guides.transforms import FLOW_FAMILIES  # noqa: E402
from guides.transforms.energies import ENERGIES, density_grid, log_density, log_normalizer  # noqa: E402
from guides.transforms.energy_fit import BASELINE, fit_energy, fit_energy_restarts  # noqa: E402

WINDOW = 4.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=16, help="flow steps per family (default 16)")
    p.add_argument("--steps", type=int, default=2000, help="Adam steps per fit (default 2000)")
    p.add_argument("--batch", type=int, default=256, help="samples per step (default 256)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate, cosine-decayed to lr/20 (default 1e-2)")
    p.add_argument("--anneal", type=int, default=0,
                   help="anneal beta from 0.01 to 1 over this many steps, as in the paper (default 0: no annealing)")
    p.add_argument("--fixed-base", action="store_true",
                   help="base N(0, I) for the flows (the paper's setting) instead of a learned diagonal Gaussian")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restarts", type=int, default=4,
                   help="the diagonal baseline is the best of this many fits (origin + random starts; default 4), "
                        "since from the origin alone it can stay at a poor stationary point (U1: 3.2 vs 0.9 nats)")
    p.add_argument("--families", default=",".join([BASELINE] + list(FLOW_FAMILIES)),
                   help="comma-separated: 'diagonal' and names of guides.transforms.FLOW_FAMILIES (default: all)")
    p.add_argument("--energies", default=",".join(ENERGIES), help="comma-separated subset of U1,U2,U3,U4")
    p.add_argument("--eval-samples", type=int, default=100000, help="samples for the KL estimate (default 100000)")
    p.add_argument("--plot-samples", type=int, default=200000, help="samples per density picture (default 200000)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per fit (default 1: the 2-D problems are tiny and threads only add overhead)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"), help="output folder")
    return p.parse_args(argv)


def plot(results, energies, families, out_png, samples, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = 200
    z, _ = density_grid(WINDOW, bins)
    fig, axes = plt.subplots(len(energies), len(families) + 1, figsize=(2.2 * (len(families) + 1), 2.2 * len(energies)),
                             squeeze=False)
    extent = (-WINDOW, WINDOW, -WINDOW, WINDOW)
    for i, e in enumerate(energies):
        axes[i, 0].imshow(log_density(e, z).exp().numpy(), origin="lower", extent=extent, cmap="viridis")
        axes[i, 0].set_ylabel(e)
        for j, fam in enumerate(families, start=1):
            r = results[(e, fam)]
            g = torch.Generator().manual_seed(seed + 2)
            with torch.no_grad():
                s, _ = r.density.rsample_with_log_prob(samples, generator=g)
            h = torch.histogramdd(s.double().flip(-1), bins=[bins, bins], range=[-WINDOW, WINDOW, -WINDOW, WINDOW])[0]
            axes[i, j].imshow(h.numpy(), origin="lower", extent=extent, cmap="viridis")
            axes[i, j].set_title(f"{fam}\nKL {r.kl:.2f}", fontsize=8)
    axes[0, 0].set_title("exp(-U)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    energies = [e.strip() for e in args.energies.split(",") if e.strip()]
    for f in families:
        if f != BASELINE and f not in FLOW_FAMILIES:
            sys.exit(f"unknown family {f!r}; choose from {BASELINE}, {', '.join(FLOW_FAMILIES)}")
    for e in energies:
        if e not in ENERGIES:
            sys.exit(f"unknown energy {e!r}; choose from {', '.join(ENERGIES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results, start = {}, time.perf_counter()
    for e in energies:
        log_z = log_normalizer(e)
        for fam in families:
            kw = dict(num_layers=args.layers, steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed,
                      anneal_steps=args.anneal, learn_base=not args.fixed_base, eval_samples=args.eval_samples,
                      log_z=log_z, num_threads=args.threads)
            if fam == BASELINE and args.restarts > 1:
                r = fit_energy_restarts(e, fam, restarts=args.restarts, **kw)
            else:
                r = fit_energy(e, fam, **kw)
            results[(e, fam)] = r
            print(f"{e} {fam:12s} KL {r.kl:7.3f} +- {r.kl_se:.3f}  ({r.seconds:.1f} s)", flush=True)

    base = "N(0, I)" if args.fixed_base else "learned diagonal Gaussian"
    lines = [
        f"KL(q || p) in nats (+- Monte-Carlo s.e., {args.eval_samples} samples); {args.layers} layers, {args.steps} "
        f"Adam steps of {args.batch} samples, lr {args.lr}, anneal {args.anneal}, seed {args.seed}, flow base {base}; "
        f"diagonal = best of {args.restarts} starts",
        "",
        "| family | " + " | ".join(energies) + " | s per fit |",
        "|---|" + "---|" * (len(energies) + 1),
    ]
    for fam in families:
        cells = [f"{results[(e, fam)].kl:.3f} +- {results[(e, fam)].kl_se:.3f}" for e in energies]
        secs = sum(results[(e, fam)].seconds for e in energies) / len(energies)
        lines.append(f"| {fam} | " + " | ".join(cells) + f" | {secs:.1f} |")
    table = "\n".join(lines)
    print()
    print(table)
    (out / "energy_fits.md").write_text(table + "\n")
    plot(results, energies, families, out / "energy_fits.png", args.plot_samples, args.seed)
    print(f"\nwrote {out / 'energy_fits.png'} and {out / 'energy_fits.md'} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
