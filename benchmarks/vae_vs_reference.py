"""`zoo train` (vae + diagonal + elbo) side by side with the hand-written PyTorch VAE of reference_vae.py.

Prints, for each batch size: milliseconds per training epoch of both and the ratio zoo / hand-written; then the
evaluation throughput of the zoo's importance sampler with all its diagnostics (PSIS tail, ELBO terms, posterior means,
K-sweep, jackknife: data points x importance samples per second at K) beside the hand-written estimator's; and, with
--quality, the test log-likelihood of both after the same training (same network, data, epochs and seed).

Protocol (a shared machine's load comes and goes within seconds): zoo and hand-written runs alternate, --repeats times;
an epoch's time is its training steps only (validation and checkpoints are outside it in both). The zoo runs
`zoo train` as a user would (default --step auto: each batch shape's step is traced after 50 eager steps), so the
epochs up to and including the one that traces are warm-up and left out of both sides' figures. The ratio is that of
the medians; the "best" column is the ratio of the fastest epochs (the least disturbed), as a check on the median.
Evaluation: zoo and hand-written alternate --eval-repeats times; the best throughput of each and the median are shown.

    python benchmarks/vae_vs_reference.py --epochs 6 --repeats 3 --batch-sizes 32,128 --guides diagonal
"""
import argparse
import math
import statistics
import sys
import tempfile
import time

import torch

from inference.evaluation import importance_sample
from inference.training import TrainConfig
from zoo.cli.assemble import build_components
from zoo.cli.runs import make_config, train_run
from zoo.data import load_dataset

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from reference_vae import train_direct_flow, train_reference  # noqa: E402


def zoo_config(epochs, batch_size, seed=0, guide="diagonal", step="auto"):
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, seed=seed, progress=False,
                        precision="fp32", step=step)  # like for like: the hand-written loop runs float32
    return make_config("vae", guide, "elbo", "mnist5k", "dynamic",
                       {"latent_dim": 20, "hidden": [400], "likelihood": "bernoulli"}, train, device="cpu")


def zoo_epoch_seconds(epochs, batch_size, guide="diagonal", step="auto"):
    with tempfile.TemporaryDirectory() as out:
        train_run(zoo_config(epochs, batch_size, guide=guide, step=step), out, progress=False)
        import json

        return [json.loads(line)["seconds"] for line in open(f"{out}/metrics.jsonl")]


def warm_epochs(n_train, batch_size):
    """Epochs up to and including the one in which --step auto traces the full batches' step (their 50th use; the
    last, smaller batch of an epoch is another shape)."""
    from inference.traced_step import TRACE_AFTER

    return max(1, math.ceil(TRACE_AFTER / max(1, n_train // batch_size)))


def eval_rates(comps, ref_model, x, samples, repeats):
    """Point-samples per second of the zoo's importance sampler and of the hand-written one, alternating."""
    importance_sample(comps.model, comps.guide, x[:2], num_samples=10)  # first-call costs (imports, PSIS) not timed
    ref_model.log_likelihood(x[:2], 10)
    zoo, ref = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        importance_sample(comps.model, comps.guide, x, num_samples=samples)
        zoo.append(x.shape[0] * samples / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        ref_model.log_likelihood(x, samples)
        ref.append(x.shape[0] * samples / (time.perf_counter() - t0))
    return zoo, ref


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-sizes", default="32,128,512")
    p.add_argument("--guides", default="diagonal,iaf:4", help="diagonal is measured against reference_vae.py's "
                   "hand-written VAE, a flow guide against the same modules run without Pyro (direct_flow_loss)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--eval-points", type=int, default=100)
    p.add_argument("--eval-repeats", type=int, default=5)
    p.add_argument("--step", default="auto", choices=["auto", "traced", "eager"], help="the zoo's --step")
    p.add_argument("--quality-epochs", type=int, default=0, help="also compare test log-likelihoods (0: skip)")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    data = load_dataset("mnist5k", binarize="dynamic", seed=0)

    print(f"training speed, mnist5k (4000 points), MLP 784-400-20, CPU threads {torch.get_num_threads()}, "
          f"zoo --step {args.step}")
    print(f"{'guide':<10} {'batch':>6} {'zoo ms/epoch':>13} {'hand ms/epoch':>14} {'ratio':>7} {'best':>6} "
          f"{'epochs':>7}")
    for guide in args.guides.split(","):
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            skip = warm_epochs(len(data.train), bs) if args.step == "auto" else 1
            epochs = max(args.epochs, skip + 2)
            zoo, ref = [], []
            for _ in range(args.repeats):  # alternating
                zoo += zoo_epoch_seconds(epochs, bs, guide, args.step)[skip:]
                if guide == "diagonal":
                    ref += train_reference(data, epochs, batch_size=bs)[1][skip:]
                else:
                    ref += train_direct_flow(data, guide, epochs, batch_size=bs)[1][skip:]
            z, r = 1000 * statistics.median(zoo), 1000 * statistics.median(ref)
            print(f"{guide:<10} {bs:>6} {z:>13.1f} {r:>14.1f} {z / r:>7.3f} {min(zoo) / min(ref):>6.3f} "
                  f"{len(zoo):>7}", flush=True)

    print(f"\nevaluation throughput at K={args.eval_samples} on {args.eval_points} test points (every diagnostic of "
          f"`zoo evaluate`), {args.eval_repeats} alternating repeats")
    comps = build_components(zoo_config(1, 128), torch.device("cpu"), data=data)
    comps.model.eval(), comps.guide.eval()
    ref_model, _ = train_reference(data, 1)
    zoo_rates, ref_rates = eval_rates(comps, ref_model, data.test.x[:args.eval_points], args.eval_samples,
                                      args.eval_repeats)
    zb, rb = max(zoo_rates), max(ref_rates)
    zm, rm = statistics.median(zoo_rates), statistics.median(ref_rates)
    print(f"  {'':<13}{'best':>12} {'median':>12}  point-samples/s")
    print(f"  {'zoo':<13}{zb:>12,.0f} {zm:>12,.0f}")
    print(f"  {'hand-written':<13}{rb:>12,.0f} {rm:>12,.0f}")
    print(f"  {'ratio zoo/hand':<13}{zb / rb:>12.2f} {zm / rm:>12.2f}")

    if args.quality_epochs:
        E = args.quality_epochs
        print(f"\ntest log-likelihood after {E} epochs, batch 128, seed 0, K={args.eval_samples}, all 500 test points")
        with tempfile.TemporaryDirectory() as out:
            from zoo.cli.runs import evaluate_run

            train_run(zoo_config(E, 128), out, progress=False)
            ev = evaluate_run(out, args.eval_samples, progress=False)
            zoo_ll = -ev["nll"]["mean"]
        ref_model, _ = train_reference(data, E)
        torch.manual_seed(1)
        ref_ll = ref_model.log_likelihood(data.test.x, args.eval_samples).mean().item()
        print(f"  zoo          {zoo_ll:9.2f} nats (best validation epoch)")
        print(f"  hand-written {ref_ll:9.2f} nats (last epoch)")
        print(f"  difference   {zoo_ll - ref_ll:9.2f} nats")


if __name__ == "__main__":
    main()
