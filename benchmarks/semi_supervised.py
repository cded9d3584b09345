"""Semi-supervised MNIST (mnist5k): the test error of the zoo's ``m2`` with its defaults against Pyro's own SS-VAE
example (``benchmarks/pyro_ss_vae_m2.py``) and against a classifier of the same network trained on the labels alone,
on identical data, labels and test set.

    python benchmarks/semi_supervised.py                            # 100 and 1000 labels, seeds 0 and 1, 50 epochs
    python benchmarks/semi_supervised.py --labels 100 --epochs 20 --systems zoo,pyro --threads 1
    python benchmarks/semi_supervised.py --systems pyro --results a.jsonl   # runs in separate processes ...
    python benchmarks/semi_supervised.py --table a.jsonl b.jsonl           # ... printed as one table

Protocol (per number of labels N and seed s):
* data: mnist5k's fixed 4000/500/500 split; the N labels are the zoo's class-balanced subset drawn with seed s
  (``zoo.data.labels.mask_labels``); every other training label and every validation label is hidden; training digits
  are dynamically binarized (the same bits per epoch for both systems), the test digits binarized once (the zoo's
  fixed draw);
* zoo: ``zoo train --model m2 --labels N --epochs E --seed s`` exactly (the CLI's own entry point, its defaults), and
  its classifier scored at the checkpoint the run selects without labels (the best unlabelled validation bound:
  ``best.pt``, as ``zoo evaluate`` does);
* m1+m2: ``zoo train --model m1 --labels N --epochs 30 --seed s``, then ``zoo train --model m1+m2 --m1-run`` that run
  ``--labels N --epochs E --seed s`` (defaults otherwise), scored like zoo; seconds per epoch are M1+M2's own;
* pyro: Pyro's example (its model, guide, enumeration, auxiliary loss x46, Adam 4.2e-4, batch 200, interleaved
  supervised batches), data loading adapted as its module says; scored at its last epoch (Pyro itself picks by
  validation accuracy, which needs the hidden validation labels);
* supervised: a fresh copy of the zoo m2's classifier network (``model.make_classifier()``) trained with
  cross-entropy on the N labelled digits alone for as many Adam steps as the zoo's run took; last iterate scored;
* test error: argmax of q(y|x) on the 500 test digits, with its binomial standard error sqrt(p (1 - p) / 500);
  seconds per epoch: the mean training time of an epoch (validation and scoring excluded).
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

import pyro  # noqa: E402

from inference.training import make_optimizer  # noqa: E402
from zoo.data import load_dataset  # noqa: E402
from zoo.data.labels import mask_labels  # noqa: E402


M1_EPOCHS = 30  # M1's epochs before M1+M2 (``zoo/m1m2.py``)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_zoo(n, seed, epochs, out, model="m2", extra=()):
    """``zoo train --model MODEL --labels n`` with every other option at its default; the selected checkpoint's
    error."""
    from zoo.cli.assemble import load_run
    from zoo.cli.main import main as zoo_main
    from zoo.cli.semi_supervised import classification_metrics

    code = zoo_main(["train", "--model", model, "--labels", str(n), "--epochs", str(epochs), "--seed", str(seed),
                     "--device", "cpu", "--no-progress", "--out", out, *extra])
    if code != 0:
        raise SystemExit(f"zoo train failed with exit code {code}")
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    comps = load_run(out, torch.device("cpu"))
    with torch.no_grad():
        wrong = (comps.guide.classify(comps.data.test.x).argmax(-1) != comps.data.test.y).double()
    assert abs(float(wrong.mean()) - classification_metrics(comps, comps.data.test)["test_error"]["mean"]) < 1e-9
    best = max(i for i, r in enumerate(rows) if r.get("best"))
    return {"error": float(wrong.mean()), "per_epoch": [r["test_error"] for r in rows],
            "seconds_per_epoch": sum(r["seconds"] for r in rows) / len(rows), "selected_epoch": best + 1,
            "steps": rows[-1]["step"], "selection": "best unlabelled validation bound (best.pt)",
            "latent_dim": comps.config["model"]["options"].get("latent_dim")}


def run_m1m2(n, seed, epochs, tmp, m1_epochs=M1_EPOCHS):
    """``zoo train --model m1 --labels n --epochs 30``, then ``zoo train --model m1+m2 --m1-run`` that run, every
    other option at its default; the seconds per epoch are M1+M2's (M1's training time is recorded beside them)."""
    from zoo.cli.main import main as zoo_main

    m1 = os.path.join(tmp, f"m1-{n}-{seed}")
    t0 = time.perf_counter()
    code = zoo_main(["train", "--model", "m1", "--labels", str(n), "--epochs", str(m1_epochs), "--seed", str(seed),
                     "--device", "cpu", "--no-progress", "--out", m1])
    if code != 0:
        raise SystemExit(f"zoo train --model m1 failed with exit code {code}")
    m1_seconds = time.perf_counter() - t0
    r = run_zoo(n, seed, epochs, os.path.join(tmp, f"m1m2-{n}-{seed}"), model="m1+m2", extra=("--m1-run", m1))
    r.update(m1_epochs=m1_epochs, m1_seconds=m1_seconds)
    return r


def run_pyro(n, seed, epochs):
    from pyro_ss_vae_m2 import train_pyro_example

    data = mask_labels(load_dataset("mnist5k", binarize="dynamic", seed=seed), n, seed=seed)
    errors, wrong, seconds = train_pyro_example(data, epochs=epochs, seed=seed,
                                                log=lambda m: log(f"  [{n} labels, seed {seed}] {m}"))
    return {"error": float(wrong.mean()), "per_epoch": errors, "seconds_per_epoch": sum(seconds) / len(seconds),
            "selected_epoch": epochs, "selection": "last epoch"}


def run_supervised(n, seed, steps, batch_size=128, lr=1e-3):
    """The zoo m2's classifier network (its defaults) on the labelled digits alone, ``steps`` Adam steps."""
    from zoo.m2 import M2

    data = mask_labels(load_dataset("mnist5k", binarize="dynamic", seed=seed), n, seed=seed)
    pyro.set_rng_seed(seed)
    classifier = M2(data.dim, num_classes=data.num_classes).make_classifier()  # what `zoo train --model m2` builds
    opt = make_optimizer(list(classifier.parameters()), lr)
    has = data.train.y >= 0
    grey, labels = data.train.x[has], data.train.y[has]
    batch = min(len(labels), batch_size)
    t0 = time.perf_counter()
    classifier.train()
    for _ in range(steps):
        idx = torch.randperm(len(labels))[:batch]
        loss = F.cross_entropy(classifier(torch.bernoulli(grey[idx])), labels[idx])  # dynamic binarization
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    classifier.eval()
    with torch.no_grad():
        wrong = (classifier(data.test.x).argmax(-1) != data.test.y).double()
    return {"error": float(wrong.mean()), "seconds": time.perf_counter() - t0, "selection": "last step"}


def se(p, n=500):
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def print_table(rows):
    print("| system | labels | seed | epochs | test error % (± se) | lowest epoch % | selected epoch | s/epoch "
          "| CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (r["labels"], r["system"], r["seed"])):
        low = f"{100 * min(r['per_epoch']):.1f}" if r.get("per_epoch") else "-"
        spe = f"{r['seconds_per_epoch']:.1f}" if r.get("seconds_per_epoch") else "-"
        print(f"| {r['system']} | {r['labels']} | {r['seed']} | {r.get('epochs', '-')} | "
              f"{100 * r['error']:.1f} ± {100 * se(r['error']):.1f} | {low} | {r.get('selected_epoch', '-')} | {spe} "
              f"| {r['cpu']} ({r['threads']} thread{'s' if r['threads'] != 1 else ''}) |")
    groups = {}
    for r in rows:
        groups.setdefault((r["system"], r["labels"], r.get("epochs")), []).append(r["error"])
    print()
    print("| system | labels | epochs | seeds | mean test error % (± se over test points, seeds pooled) |")
    print("|---|---:|---:|---:|---:|")
    for (system, n, epochs), errs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = sum(errs) / len(errs)
        pooled = math.sqrt(sum(se(e) ** 2 for e in errs)) / len(errs)
        print(f"| {system} | {n} | {epochs} | {len(errs)} | {100 * m:.1f} ± {100 * pooled:.1f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", default="100,1000")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=50, help="epochs of both systems (the issue's budget: 50)")
    p.add_argument("--systems", default="zoo,pyro,supervised,m1+m2",
                   help="any of zoo, pyro, supervised, m1+m2")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--results", default=None, help="append each run's result to this JSON-lines file")
    p.add_argument("--table", nargs="+", default=None, metavar="JSONL", help="only print the table of these files")
    args = p.parse_args(argv)
    if args.table:
        print_table([json.loads(line) for path in args.table for line in open(path) if line.strip()])
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    systems = [s for s in args.systems.split(",") if s]
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    cpu, threads = cpu_name(), torch.get_num_threads()
    log(f"mnist5k; systems {systems}; {args.epochs} epochs; {cpu}, {threads} torch threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(t) for t in args.labels.split(",")]:
            for seed in [int(t) for t in args.seeds.split(",")]:
                steps = None
                for system in systems:
                    t0 = time.perf_counter()
                    if system == "zoo":
                        r = run_zoo(n, seed, args.epochs, os.path.join(tmp, f"m2-{n}-{seed}"))
                        steps = r["steps"]
                    elif system == "m1+m2":
                        r = run_m1m2(n, seed, args.epochs, tmp)
                    elif system == "pyro":
                        r = run_pyro(n, seed, args.epochs)
                    elif system == "supervised":
                        if steps is None:  # as many steps as the zoo's m2 takes: ceil(split / 128) per epoch
                            from zoo.data.labels import auto_repeat

                            steps = args.epochs * math.ceil((4000 + (auto_repeat(n, 4000) - 1) * n) / 128)
                        r = run_supervised(n, seed, steps)
                    else:
                        raise SystemExit(f"unknown system {system!r}")
                    r.update(system=system, labels=n, seed=seed, epochs=args.epochs, cpu=cpu, threads=threads,
                             wall_seconds=time.perf_counter() - t0)
                    rows.append(r)
                    log(f"{system}, {n} labels, seed {seed}: test error {100 * r['error']:.1f}% "
                        f"({r['wall_seconds']:.0f} s)")
                    if args.results:
                        with open(args.results, "a") as f:
                            f.write(json.dumps(r) + "\n")
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
