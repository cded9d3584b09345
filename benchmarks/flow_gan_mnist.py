"""Flow-GAN on 8-bit mnist5k (Grover, Dhar & Ermon 2018): one realnvp trained by maximum likelihood (``mle``),
adversarially (``adv``: a WGAN-GP critic on its samples) and by the hybrid (``hybrid:1``), for the same budget; exact
test bits/dim beside the sample-quality metrics of the zoo's classifier.

    python benchmarks/flow_gan_mnist.py                         # 5 epochs each, 2000 samples per evaluation
    python benchmarks/flow_gan_mnist.py --epochs 2 --systems mle,hybrid:1 --model-args "--hidden 16 --flow-depth 2"

The paper's table on MNIST (its data and budget): MLE 3.54, ADV 8.53, hybrid 4.21 bits/dim -- adversarial training
gives the best sample score and a far worse likelihood, the hybrid sits in between. Protocol as in
adversarial_mnist.py (grey levels, one classifier, the data's own row first); realnvp with its zoo defaults and the
critic ``mlp`` for every system that has one.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adversarial_mnist import log, print_table, run_system  # noqa: E402

SYSTEMS = {name: ["--model", "realnvp", "--objective", name] + ([] if name == "mle" else ["--critic", "mlp"])
           for name in ("mle", "adv", "hybrid:1")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", default=",".join(SYSTEMS))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--model-args", default="", help="extra zoo train options for realnvp, e.g. '--hidden 16'")
    p.add_argument("--results", default=None, help="append each system's result to this JSON-lines file")
    p.add_argument("--table", nargs="+", default=None, metavar="JSONL", help="only print the table of these files")
    args = p.parse_args()
    if args.table:
        print_table([json.loads(line) for path in args.table for line in open(path) if line.strip()], "bits_per_dim")
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.systems.split(","):
            if name not in SYSTEMS:
                raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
            log(f"{name}: training {args.epochs} epochs ...")
            result = run_system(name, args.epochs, args.seed, args.quality_samples, folder,
                                SYSTEMS[name] + args.model_args.split())
            result["model_args"] = args.model_args
            results.append(result)
            if args.results:
                with open(args.results, "a") as f:
                    f.write(json.dumps(result) + "\n")
    print_table(results, "bits_per_dim")
    print("paper (MNIST, its budget): MLE 3.54, ADV 8.53, hybrid 4.21 bits/dim")


if __name__ == "__main__":
    main()
