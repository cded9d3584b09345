"""How far the demo's importance-sampled NLL is off: IS at K = 5000 beside AIS at two T and the BDMC gap.

Trains the demo model (``zoo demo``'s vae + diagonal guide, MLP 784-400-20, Bernoulli, mnist5k with dynamic
binarization; 30 epochs by default, or ``--run DIR`` of a finished demo), then on the same test points prints

    IS, K = 5000                           (the report's headline estimator)
    its jackknife (Nowozin 2018)           (same weights)
    AIS, T = T1 and T = T2 from q(z|x)     (Wu et al. 2017; HMC, step sizes from a pilot)
    BDMC gap at T1 and T2                  (Grosse et al. 2015: reverse minus forward AIS on points simulated from
                                            the model; how far AIS with that T can be off here)

each with its standard error over points and the seconds it took, and the difference of each estimate from the IS
figure (positive: IS was too pessimistic by that much).

    python benchmarks/ais_demo.py                              # 30 epochs, 100 test points, T = 100 and 1000
    python benchmarks/ais_demo.py --run runs/demo --points 500 --steps 200,2000
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyro  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import machine_line  # noqa: E402


def demo_run(args) -> str:
    if args.run:
        return args.run
    from inference.training import TrainConfig
    from zoo.cli.runs import make_config, train_run

    out = os.path.join(tempfile.mkdtemp(prefix="ais-demo-"), "demo")
    train = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=0, progress=True)
    config = make_config("vae", "diagonal", "elbo", "mnist5k", "dynamic",
                         {"latent_dim": 20, "hidden": [400], "likelihood": "bernoulli", "activation": "relu",
                          "prior": "standard"}, train, device="cpu")
    t0 = time.perf_counter()
    train_run(config, out, progress=True)
    print(f"trained the demo for {args.epochs} epochs in {time.perf_counter() - t0:.0f} s -> {out}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=None, help="a finished demo run (else one is trained)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--points", type=int, default=100, help="test points (the first N of the test split)")
    p.add_argument("--samples", type=int, default=5000, help="K of the IS estimate")
    p.add_argument("--steps", default="100,1000", help="two AIS schedule lengths T1,T2")
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--leapfrog", type=int, default=10)
    p.add_argument("--bdmc", type=int, default=20, help="simulated points for BDMC")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    run = demo_run(args)

    import numpy as np

    from inference.ais import AnnealedImportanceSampler
    from inference.evaluation import importance_sample, mean_se
    from zoo.cli.assemble import load_run

    comps = load_run(run, torch.device("cpu"))
    comps.model.eval(), comps.guide.eval()
    x = comps.data.test.x[:args.points]
    rows = []
    pyro.set_rng_seed(0)
    t0 = time.perf_counter()
    est = importance_sample(comps.model, comps.guide, x, num_samples=args.samples, batch_size=100)
    t_is = time.perf_counter() - t0
    is_nll = mean_se(-est["log_px"])
    rows.append((f"IS, K = {args.samples}", is_nll, t_is))
    rows.append((f"jackknife of the same {args.samples} weights", mean_se(-est["log_px_jackknife"]), 0.0))
    gaps = []
    for steps in (int(s) for s in args.steps.split(",")):
        pyro.set_rng_seed(0)
        sampler = AnnealedImportanceSampler(comps.model, comps.guide, num_steps=steps, num_chains=args.chains,
                                            leapfrog=args.leapfrog)
        t0 = time.perf_counter()
        out = sampler.log_likelihood(x)
        rows.append((f"AIS, T = {steps}, {args.chains} chains, from {'q(z|x)' if sampler.start == 'guide' else 'p(z)'}",
                     mean_se(-out["log_px"].numpy()), time.perf_counter() - t0))
        if args.bdmc:
            pyro.set_rng_seed(1)  # the same simulated points for every T
            t0 = time.perf_counter()
            b = sampler.bdmc(args.bdmc, x)
            gaps.append((steps, mean_se(b["gap"].numpy()), mean_se(-b["lower"].numpy()), mean_se(-b["upper"].numpy()),
                         time.perf_counter() - t0))
    print(f"\ndemo run {run}: {args.points} test points of mnist5k (dynamic binarization); nats, mean +- se over points")
    print("| estimator | NLL | IS NLL minus this | seconds |\n|---|---|---|---|")
    for name, v, sec in rows:
        print(f"| {name} | {v['mean']:.2f} +- {v['se']:.2f} | {is_nll['mean'] - v['mean']:+.2f} | {sec:.1f} |")
    if gaps:
        print(f"\nBDMC on {args.bdmc} points simulated from the model (forward AIS NLL >= exact >= reverse AIS NLL in "
              "expectation):")
        print("| T | forward NLL | reverse NLL | gap | seconds |\n|---|---|---|---|---|")
        for steps, g, lo, up, sec in gaps:
            print(f"| {steps} | {lo['mean']:.2f} +- {lo['se']:.2f} | {up['mean']:.2f} +- {up['se']:.2f} | "
                  f"{g['mean']:.3f} +- {g['se']:.3f} | {sec:.1f} |")
    khat = est["khat"]
    print(f"\nPSIS k-hat > 0.7 for {100 * float(np.mean(khat > 0.7)):.0f}% of the points (median "
          f"{float(np.median(khat)):.2f}); IS NLL at K = " +
          ", ".join(f"{k}: {float(-v.mean()):.2f}" for k, v in sorted(est["log_px_sweep"].items())))


if __name__ == "__main__":
    main()
