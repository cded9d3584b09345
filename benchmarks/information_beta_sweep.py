"""Where the KL term goes as beta grows: the ELBO's information decomposition of a vae on mnist5k at beta = 0.5, 1, 2, 4.

Each run trains the same vae (diagonal guide, standard normal prior, dynamic binarization, same seed, epochs, batch
size and Adam) with the beta-VAE objective -E_q log p(x|z) + beta KL(q(z|x) || p(z)) (``--beta B``), then `zoo
evaluate`'s protocol (best validation epoch, the 500 test digits, K importance samples) reports the test ELBO (at beta =
1, the bound itself), and eval.json's ``information`` splits its KL term (inference/information.py):

    KL term = I_q(x; z) + KL(q(z) || p(z))                 (Hoffman & Johnson 2016)
    KL(q(z) || p(z)) = TC + sum_j KL(q(z_j) || p(z_j))     (Chen et al. 2018)

over the test set's exact aggregate posterior (N x N x K evaluations), with standard errors over the test points.
What to look for: the KL term falls as beta grows, and Chen et al.'s point that the beta-VAE's pressure lowers I_q
and TC too, not only the dimension-wise KL. I_q of the test set can never exceed log N = log 500 = 6.21: at beta <= 1
it comes close (the encoder tells the 500 test digits apart almost surely), so there it is saturated and says little
more than that; the marginal KL and its split are where the betas differ most.

    python benchmarks/information_beta_sweep.py                  # a few minutes on 1 thread
    python benchmarks/information_beta_sweep.py --epochs 30 --betas 0.5,1,2,4,8
"""
import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.machine_info import cpu_name  # noqa: E402
from inference.training import TrainConfig  # noqa: E402
from zoo.cli.runs import evaluate_run, make_config, train_run  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--betas", default="0.5,1,2,4", help="KL weights, comma-separated")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--hidden", default="200", help="MLP widths of encoder and decoder")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=100, help="importance samples per test point (ELBO and NLL)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="keep the run directories here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from benchmarks.machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    betas = [float(b) for b in args.betas.split(",") if b.strip()]
    hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    root = args.out or tempfile.mkdtemp(prefix="information-beta-")
    rows = []
    for beta in betas:
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, beta=beta,
                            progress=False)
        options = {"latent_dim": args.latent_dim, "hidden": hidden, "likelihood": "bernoulli"}
        config = make_config("vae", "diagonal", "elbo", "mnist5k", "dynamic", options, train, device="cpu")
        out = os.path.join(root, f"beta{beta:g}")
        state = train_run(config, out, progress=False)
        t0 = time.perf_counter()
        ev = evaluate_run(out, args.samples, progress=False, quality_samples=0, device="cpu")
        rows.append((beta, ev, state["wall_seconds"], time.perf_counter() - t0))
        print(f"  done beta={beta:g}: {state['wall_seconds']:.0f} s training, {rows[-1][3]:.0f} s evaluation "
              f"({ev['information']['seconds']:.1f} s of it the information decomposition)", flush=True)

    def pm(v, digits=2):
        return f"{v['mean']:.{digits}f} ± {v['se']:.{digits}f}" if isinstance(v, dict) else "-"

    info0 = rows[0][1]["information"]
    print(f"\nvae on mnist5k (4000 train / 500 test digits, dynamic binarization), MLP {hidden}, z {args.latent_dim}, "
          f"{args.epochs} epochs, batch {args.batch_size}, Adam {args.lr}, seed {args.seed}; test ELBO and NLL with "
          f"K={args.samples}; information over N={info0['points']} test points x K={info0['samples_per_point']} draws "
          f"(I_q <= log N = {info0['max_mutual_information']:.2f}); nats, mean ± s.e. over test points")
    print(f"CPU: {cpu_name()}, {args.threads} thread(s)")
    header = ["beta", "test ELBO", "NLL", "KL term", "I_q(x;z)", "marginal KL", "TC", "dim-wise KL", "active",
              "train s", "info s"]
    widths = [5, 16, 16, 14, 13, 14, 13, 14, 7, 8, 7]
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    for beta, ev, train_s, _ in rows:
        info = ev["information"]
        elbo = {"mean": -ev["neg_elbo"]["mean"], "se": ev["neg_elbo"]["se"]}
        au = f"{ev['active_units']}/{ev['latent_units']}" if ev.get("active_units") is not None else "-"
        cells = [f"{beta:g}", pm(elbo), pm({"mean": ev["nll"]["mean"], "se": ev["nll"]["se"]}), pm(info["kl"]),
                 pm(info["mutual_information"]), pm(info["marginal_kl"]), pm(info["total_correlation"]),
                 pm(info["dimensionwise_kl"]), au, f"{train_s:.0f}", f"{info['seconds']:.1f}"]
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    print(f"\nrun directories: {root}")


if __name__ == "__main__":
    main()
