"""InfoGAN on mnist5k: does the categorical code find the digits? (Chen et al. 2016 report ~95 % on full MNIST.)

    python benchmarks/infogan_mnist.py                         # 20 epochs, batch 64, the paper's networks
    python benchmarks/infogan_mnist.py --epochs 2 --threads 1  # a quick look
    python benchmarks/infogan_mnist.py --out runs/infogan      # keep the run directory (and write its report)

Protocol: ``zoo train --model infogan`` with its defaults (the paper's MNIST generator with 62 noise units, a 10-class
code and 2 continuous codes; Q(c|x) as the guide; objective ``infogan``, lambda 1 for the categorical code and 0.1 for
the continuous ones; Adam lr 1e-3 for G and Q, 2e-4 for D, beta1 0.5) on mnist5k's fixed 4000/500/500 split in grey
levels (``--binarize none``), the zoo's DCGAN critic (two stride-2 convolutions; the paper's D adds batch norm and an
FC 1024 layer, and shares its body with Q). Then ``zoo evaluate``: the code's accuracy is the best
one-to-one matching (Hungarian algorithm) of argmax Q(c|x) on the 500 test digits to their labels, with its binomial
standard error; beside it the accuracy under the matching fitted on the validation split (no test label used to
match), the same for the last epoch's weights (the run's ``best.pt`` is the epoch with the lowest validation value of
the InfoGAN game, 2 JSD estimate - L_I), and the per-epoch validation accuracy and MI bound (at most log 10 = 2.303
nats). Labels are used for nothing but these numbers.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def last_epoch_accuracy(run_dir: str) -> dict:
    """The code's test accuracy with the weights of the last epoch (checkpoint.pt), matched on test and on valid."""
    from inference.infogan import assigned_codes, hungarian_accuracy, matched_accuracy
    from zoo.cli.assemble import load_run
    import torch

    comps = load_run(run_dir, torch.device("cpu"), which="last")
    K, site = comps.model.categorical, comps.guide.categorical_site
    test, valid = comps.data.test, comps.data.valid
    codes = assigned_codes(comps.guide, test.x, site)
    accuracy, _, _ = hungarian_accuracy(codes, test.y.numpy(), K, 10)
    _, valid_matching, _ = hungarian_accuracy(assigned_codes(comps.guide, valid.x, site), valid.y.numpy(), K, 10)
    return {"code_accuracy": accuracy, "code_accuracy_other_matching": matched_accuracy(codes, test.y.numpy(),
                                                                                        valid_matching)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared 2-core machine)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="passed to zoo train (e.g. width=32)")
    p.add_argument("--out", default=None, help="keep the run here (default: a temporary folder)")
    p.add_argument("--report", action="store_true", help="also write the zoo report of the run into OUT/report")
    p.add_argument("--results", default=None, help="append the result to this JSON-lines file")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    from zoo.cli.main import main as zoo_main

    with tempfile.TemporaryDirectory() as folder:
        out = args.out or os.path.join(folder, "infogan")
        argv = ["train", "--model", "infogan", "--data", "mnist5k", "--binarize", "none", "--epochs", str(args.epochs),
                "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--device", "cpu", "--no-progress",
                "--out", out, "--overwrite"]
        for option in args.model_option:
            argv += ["--model-option", option]
        log(f"training: zoo {' '.join(argv[:-2])} ...")
        t0 = time.perf_counter()
        if zoo_main(argv) != 0:
            raise SystemExit("zoo train failed")
        wall = time.perf_counter() - t0
        if zoo_main(["evaluate", out, "--quality-samples", "0", "--device", "cpu", "--no-progress"]) != 0:
            raise SystemExit("zoo evaluate failed")
        summary = json.load(open(os.path.join(out, "eval.json")))
        metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
        last = last_epoch_accuracy(out)
        if args.report:
            zoo_main(["report", out, "--out", os.path.join(out, "report"), "--no-progress", "--quality-samples", "0"])
    seconds = [r["seconds"] for r in metrics]
    result = {
        "epochs": len(metrics), "batch_size": args.batch_size, "seed": args.seed, "threads": args.threads,
        "model_options": args.model_option, "steps": metrics[-1]["step"],
        "best_epoch": summary["best_epoch"] + 1, "code_accuracy": summary["code_accuracy"],
        "code_accuracy_other_matching": summary.get("code_accuracy_other_matching"),
        "code_usage": summary.get("code_usage"), "last_epoch": last,
        "per_epoch": [{k: r.get(k) for k in ("epoch", "valid_code_accuracy", "mi_bound", "mi_bound_continuous",
                                              "valid_loss", "seconds")} for r in metrics],
        "seconds_per_epoch": sum(seconds) / len(seconds), "train_seconds": sum(seconds), "wall_seconds": wall,
        "cpu": cpu_name(), "torch": torch.__version__,
    }
    if args.results:
        with open(args.results, "a") as f:
            f.write(json.dumps(result) + "\n")
    acc = result["code_accuracy"]
    print(f"InfoGAN on mnist5k (grey levels), {result['epochs']} epochs x {result['steps'] // result['epochs']} steps "
          f"of {args.batch_size}, seed {args.seed}, {args.threads} torch thread(s), CPU {result['cpu']}")
    print(f"{'epoch':>5} {'valid acc':>9} {'MI bound (nats, <= 2.303)':>26} {'MI cont.':>9} {'seconds':>8}")
    for r in result["per_epoch"]:
        print(f"{r['epoch'] + 1:>5} {100 * r['valid_code_accuracy']:>8.1f}% {r['mi_bound']:>26.3f} "
              f"{r['mi_bound_continuous']:>9.3f} {r['seconds']:>8.1f}")
    print(f"test code accuracy (best.pt, epoch {result['best_epoch']}): {100 * acc['mean']:.1f} % ± {100 * acc['se']:.1f}"
          f" (matching fitted on valid: {100 * result['code_accuracy_other_matching']:.1f} %)")
    print(f"test code accuracy (last epoch): {100 * last['code_accuracy']:.1f} % (matching fitted on valid: "
          f"{100 * last['code_accuracy_other_matching']:.1f} %)")
    print(f"codes used on the test split: {result['code_usage']}")
    print(f"{result['seconds_per_epoch']:.1f} s per epoch, {result['train_seconds'] / 60:.1f} min of training, "
          f"{result['wall_seconds'] / 60:.1f} min wall; the paper: about 95 % (5 % error) on full MNIST")


if __name__ == "__main__":
    main()
