"""Evaluation throughput and memory: the zoo's importance-sampled log-likelihood beside pythae's ``get_nll``.

Same network (MLP 784-400-20, ReLU, Bernoulli decoder), same test digits, same K. Throughput is data points x
importance samples per second. pythae is an optional benchmark dependency (``pip install pythae``); without it only the
zoo's figures are printed. Peak resident memory of the zoo's evaluation is measured in fresh subprocesses at two K:
it must differ by less than one chunk of particles (the evaluation holds one chunk and one batch's log-weights).

    python benchmarks/eval_throughput.py --points 100 --samples 5000 --memory-samples 5000,50000
"""
import argparse
import json
import subprocess
import sys
import time

import torch


def zoo_throughput(points, samples):
    from inference.evaluation import importance_sample
    from inference.training import TrainConfig
    from zoo.cli.assemble import build_components
    from zoo.cli.runs import make_config
    from zoo.data import load_dataset

    data = load_dataset("mnist5k", binarize="dynamic", seed=0)
    cfg = make_config("vae", "diagonal", "elbo", "mnist5k", "dynamic",
                      {"latent_dim": 20, "hidden": [400], "likelihood": "bernoulli"}, TrainConfig(), device="cpu")
    comps = build_components(cfg, torch.device("cpu"), data=data)
    comps.model.eval(), comps.guide.eval()
    x = data.test.x[:points]
    importance_sample(comps.model, comps.guide, x[:2], num_samples=10)  # imports and first-call costs
    t0 = time.perf_counter()
    importance_sample(comps.model, comps.guide, x, num_samples=samples)
    return points * samples / (time.perf_counter() - t0), x


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
chunk = _chunk_sizes(%(batch)d, %(samples)d, 784, 2**23)
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
    p.add_argument("--pythae-points", type=int, default=20, help="pythae loops per point: fewer points suffice")
    p.add_argument("--memory-samples", default="5000,50000")
    p.add_argument("--memory-points", type=int, default=100)
    args = p.parse_args()
    zoo_rate, x = zoo_throughput(args.points, args.samples)
    print(f"evaluation throughput at K={args.samples} (point-samples per second, CPU threads {torch.get_num_threads()})")
    print(f"  zoo importance_sample     {zoo_rate:>12,.0f}")
    try:
        import pythae  # noqa: F401
    except ImportError:
        print("  pythae                    not installed (pip install pythae) -- no ratio")
    else:
        for bs in (100, args.samples):
            rate = pythae_throughput(x[:args.pythae_points], args.samples, bs)
            print(f"  pythae get_nll(batch={bs:<5}) {rate:>10,.0f}   zoo / pythae = {zoo_rate / rate:.2f}")
    rows = []
    for k in [int(v) for v in args.memory_samples.split(",")]:
        peak, chunk = peak_memory_mib(args.memory_points, k)
        rows.append((k, peak, chunk))
    print(f"\npeak resident memory of the zoo's evaluation ({args.memory_points} points, fresh process)")
    for k, peak, chunk in rows:
        print(f"  K={k:<7} {peak:8.1f} MiB   (one chunk of particles: {chunk:.1f} MiB)")
    if len(rows) >= 2:
        diff = rows[-1][1] - rows[0][1]
        print(f"  difference {diff:.1f} MiB; one chunk {rows[0][2]:.1f} MiB -> "
              f"{'bounded' if diff < rows[0][2] else 'NOT bounded'}")
    print(json.dumps({"zoo_rate": zoo_rate}))


if __name__ == "__main__":
    main()
