"""Evaluation throughput and memory: the zoo's importance-sampled log-likelihood beside pythae's ``get_nll``.

Same network (MLP 784-400-20, ReLU, Bernoulli decoder), same test digits, same K. Throughput is data points x
importance samples per second. The zoo's network is trained for a few epochs first, so that the float32 and bfloat16
(``precision="bf16"``: networks under autocast, log-densities float32) estimates can be compared on a fitted model;
the paired difference of their NLLs is printed with its standard error. pythae is an optional benchmark dependency
(``pip install pythae``); without it only the zoo's figures are printed. Its ``get_nll`` is run at its default batch
size (100) and at batch K.

Peak resident memory of the zoo's evaluation is measured in fresh subprocesses at two K: the evaluation holds one chunk
of particles and O(sqrt K) log-weights per point, so the two peaks must differ by less than one chunk.

    python benchmarks/eval_throughput.py --points 100 --samples 5000 --memory-samples 5000,50000
"""
import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def zoo_network(train_epochs):
    """The zoo's vae/diagonal on mnist5k, trained for ``train_epochs`` (weights do not change the throughput)."""
    from inference.training import TrainConfig
    from zoo.cli.assemble import build_components, load_run
    from zoo.cli.runs import make_config, train_run

    cfg = make_config("vae", "diagonal", "elbo", "mnist5k", "dynamic",
                      {"latent_dim": 20, "hidden": [400], "likelihood": "bernoulli"},
                      TrainConfig(epochs=max(train_epochs, 1), progress=False), device="cpu")
    if train_epochs <= 0:
        comps = build_components(cfg, torch.device("cpu"))
    else:
        with tempfile.TemporaryDirectory() as out:
            train_run(cfg, out, progress=False)
            comps = load_run(out, torch.device("cpu"))
    comps.model.eval(), comps.guide.eval()
    return comps


def zoo_throughput(comps, x, samples, precision, repeats):
    from inference.evaluation import importance_sample

    importance_sample(comps.model, comps.guide, x[:2], num_samples=10, precision=precision)  # first-call costs
    rates, result = [], None
    for r in range(repeats):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        result = importance_sample(comps.model, comps.guide, x, num_samples=samples, precision=precision)
        rates.append(x.shape[0] * samples / (time.perf_counter() - t0))
    return statistics.median(rates), -result["log_px"]


def pythae_throughput(x, samples, batch_size):
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from torch import nn

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(784, 400), nn.ReLU())
            self.mu, self.log_var = nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            h = self.body(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"), Encoder(), Decoder())
    model.eval()
    data = x.reshape(-1, 1, 28, 28)
    with torch.no_grad():
        model.get_nll(data[:1], n_samples=batch_size, batch_size=batch_size)  # first-call costs
        t0 = time.perf_counter()
        model.get_nll(data, n_samples=samples, batch_size=batch_size)
    return x.shape[0] * samples / (time.perf_counter() - t0)


MEMORY_CHILD = """
import resource, sys, torch
sys.argv = ['x']
from inference.evaluation import importance_sample, _chunk_sizes
from inference.training import TrainConfig
from zoo.cli.assemble import build_components
from zoo.cli.runs import make_config
from zoo.data import load_dataset
data = load_dataset('mnist5k', binarize='dynamic', seed=0)
cfg = make_config('vae', 'diagonal', 'elbo', 'mnist5k', 'dynamic', {'latent_dim': 20, 'hidden': [400],
                  'likelihood': 'bernoulli'}, TrainConfig(), device='cpu')
c = build_components(cfg, torch.device('cpu'), data=data)
x = data.test.x[:%(points)d]
importance_sample(c.model, c.guide, x, num_samples=%(samples)d, batch_size=%(batch)d)
chunk = _chunk_sizes(%(batch)d, %(samples)d, 784)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, chunk * %(batch)d * 784 * 4 / 2**20)
"""


def peak_memory_mib(points, samples, batch=100):
    code = MEMORY_CHILD % {"points": points, "samples": samples, "batch": batch}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--samples", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3, help="zoo timings: median over repeats")
    p.add_argument("--train-epochs", type=int, default=5, help="train the zoo's network first (0: random weights)")
    p.add_argument("--pythae-points", type=int, default=20, help="pythae loops per point: fewer points suffice")
    p.add_argument("--precisions", default="auto,fp32,bf16",
                   help="the zoo's rows (auto: what --precision auto, the default, runs on this machine)")
    p.add_argument("--memory-samples", default="5000,50000", help="K of the memory rows ('' skips them)")
    p.add_argument("--memory-points", type=int, default=100)
    args = p.parse_args()
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    from zoo.data import load_dataset

    x = load_dataset("mnist5k", binarize="dynamic", seed=0).test.x[:args.points]
    comps = zoo_network(args.train_epochs)
    from zoo.networks.precision import resolve_precision

    precisions = [v for v in args.precisions.split(",") if v] or ["fp32"]
    precisions = (["fp32"] if "fp32" not in precisions else []) + precisions  # the reference of the NLL differences
    runs = {prec: [] for prec in precisions}
    for _ in range(args.repeats):  # interleaved: load from other processes falls on every row alike
        for prec in precisions:
            runs[prec].append(zoo_throughput(comps, x, args.samples, prec, 1))
    rows = {prec: (statistics.median(rate for rate, _ in v), v[-1][1]) for prec, v in runs.items()}
    print(f"evaluation throughput at K={args.samples}, {args.points} mnist5k test digits "
          f"(point-samples per second, CPU threads {torch.get_num_threads()})")
    nll32 = rows["fp32"][1]
    for prec, (rate, nll) in rows.items():
        d = nll - nll32
        se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        ran = resolve_precision(prec, "cpu")[0] if prec == "auto" else prec
        name = prec + (f" ({ran})" if prec == "auto" else "")
        print(f"  zoo importance_sample {name:<11} {rate:>12,.0f}   NLL {nll.mean():8.3f}"
              + (f"  ({rate / rows['fp32'][0]:.2f}x fp32)" if prec != "fp32" else "")
              + (f"  ({prec} - fp32: {d.mean():+.4f} +- {se:.4f} nats)" if ran != "fp32" else ""))
    pythae_rate = None
    try:
        import pythae  # noqa: F401
    except ImportError:
        print("  pythae                        not installed (pip install pythae) -- no ratio")
    else:
        for bs in (100, args.samples):
            rate = pythae_throughput(x[:args.pythae_points], args.samples, bs)
            pythae_rate = pythae_rate or rate
            print(f"  pythae get_nll(batch={bs:<5})    {rate:>10,.0f}   "
                  + ", ".join(f"zoo {prec} / pythae = {r / rate:.2f}" for prec, (r, _) in rows.items()))
    mem = []
    for k in [int(v) for v in args.memory_samples.split(",") if v]:
        peak, chunk = peak_memory_mib(args.memory_points, k)
        mem.append((k, peak, chunk))
    if mem:
        print(f"\npeak resident memory of the zoo's evaluation ({args.memory_points} points, fresh process)")
    for k, peak, chunk in mem:
        print(f"  K={k:<7} {peak:8.1f} MiB   (one chunk of particles: {chunk:.1f} MiB)")
    if len(mem) >= 2:
        diff = mem[-1][1] - mem[0][1]
        print(f"  difference {diff:.1f} MiB; one chunk {mem[0][2]:.1f} MiB -> "
              f"{'bounded' if abs(diff) < mem[0][2] else 'NOT bounded'}")
    print(json.dumps({**{f"zoo_{prec}": r for prec, (r, _) in rows.items()}, "pythae": pythae_rate,
                      "peak_mib": {k: peak for k, peak, _ in mem}}))


if __name__ == "__main__":
    main()
