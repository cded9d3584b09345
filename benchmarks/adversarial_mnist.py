"""The adversarial family on mnist5k, one budget for all: sample quality of gan-ns, fgan:kl, fgan:reverse-kl and
wgan-gp (DCGAN generator and critic) beside a VAE's, on one scale.

    python benchmarks/adversarial_mnist.py                          # 10 epochs each, 2000 samples per evaluation
    python benchmarks/adversarial_mnist.py --epochs 3 --systems gan-ns,vae --threads 2
    python benchmarks/adversarial_mnist.py --systems wgan-gp --results a.jsonl   # runs in separate processes ...
    python benchmarks/adversarial_mnist.py --table a.jsonl b.jsonl              # ... printed as one table

Protocol: mnist5k's fixed 4000/500/500 split, grey levels in [0, 1] (``--binarize none``) for every system, so one
feature classifier (the zoo's, trained on the grey-level training split; :mod:`inference.feature_classifier`) scores
them all; each system is trained by ``zoo train`` with its defaults and the same number of epochs and seed, then
``zoo evaluate --quality-samples N`` compares N samples (E[x|z] for the VAE, G(z) for the generators) with the 500 test
digits. The VAE is the zoo's ``vae`` with a Gaussian p(x|z) (sigma 0.1) on the same grey levels. Columns: the
Frechet distance of the classifier's features (FCD, lower is better), the kernel distance (KCD x 1e3, unbiased, +- its
standard error), the classifier score exp(E KL(p(y|x) || p(y))) (at most 10, higher is better), precision and recall
(Kynkaenniemi et al. 2019, k = 3), the test NLL where the model has one, and seconds of training. The first row is the
data's own: the 500 validation digits in place of samples.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

SYSTEMS = {
    "vae": ["--model", "vae", "--likelihood", "gaussian", "--sigma", "0.1"],
    "gan-ns": ["--model", "dcgan", "--objective", "gan-ns"],
    "fgan:kl": ["--model", "dcgan", "--objective", "fgan:kl"],
    "fgan:reverse-kl": ["--model", "dcgan", "--objective", "fgan:reverse-kl"],
    "wgan-gp": ["--model", "dcgan", "--objective", "wgan-gp"],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_system(name, epochs, seed, quality_samples, folder, options=None):
    """``zoo train`` (the system's ``options``, default SYSTEMS[name]) then ``zoo evaluate``; one result row."""
    from zoo.cli.main import main as zoo_main

    out = os.path.join(folder, name.replace(":", "-"))
    argv = ["train", *(options or SYSTEMS[name]), "--data", "mnist5k", "--binarize", "none", "--epochs", str(epochs),
            "--seed", str(seed), "--device", "cpu", "--no-progress", "--out", out, "--overwrite"]
    if zoo_main(argv) != 0:
        raise SystemExit(f"zoo train failed for {name}")
    if zoo_main(["evaluate", out, "--samples", "100", "--quality-samples", str(quality_samples), "--device", "cpu",
                 "--no-progress"]) != 0:
        raise SystemExit(f"zoo evaluate failed for {name}")
    summary = json.load(open(os.path.join(out, "eval.json")))
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    q = summary["sample_quality"]
    def mean(key):
        value = summary.get(key)
        return value.get("mean") if isinstance(value, dict) else value

    return {"system": name, "epochs": epochs, "seed": seed, "train_seconds": sum(r["seconds"] for r in metrics),
            "nll": mean("nll"), "bits_per_dim": mean("bits_per_dim"),
            "quality": {k: q[k] for k in ("frechet_classifier_distance", "kernel_classifier_distance",
                                          "classifier_score", "precision", "recall", "num_samples", "num_real")},
            "reference": {k: summary["sample_quality_reference"][k] for k in (
                "frechet_classifier_distance", "kernel_classifier_distance", "classifier_score", "precision",
                "recall")},
            "classifier": q.get("classifier", {}), "cpu": cpu_name()}


def _pm(value, scale=1.0, digits=2):
    if isinstance(value, dict):
        return f"{value['mean'] * scale:.{digits}f} ± {value['se'] * scale:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return f"{value[0] * scale:.{digits}f} ± {value[1] * scale:.{digits}f}"
    return "-" if value is None else f"{value * scale:.{digits}f}"


def print_table(results, likelihood="nll"):
    """The table of result rows; ``likelihood``: the column after recall, ``nll`` (nats) or ``bits_per_dim``."""
    if not results:
        return
    first = results[0]
    clf = first.get("classifier", {})
    print(f"mnist5k grey levels, {first['epochs']} epochs each, seed {first['seed']}, CPU {first['cpu']}; classifier "
          f"{clf.get('name', '?')} (test accuracy {clf.get('test_accuracy', float('nan')):.3f}); "
          f"{first['quality']['num_samples']} samples against {first['quality']['num_real']} test digits")
    print(f"{'system':<18} {'FCD':>8} {'KCD x1e3':>14} {'class. score':>14} {'precision':>9} {'recall':>7} "
          f"{'NLL' if likelihood == 'nll' else 'bits/dim':>8} {'train s':>8}")
    ref = first["reference"]
    print(f"{'data (valid)':<18} {_pm(ref['frechet_classifier_distance']):>8} "
          f"{_pm(ref['kernel_classifier_distance'], 1e3):>14} {_pm(ref['classifier_score']):>14} "
          f"{_pm(ref['precision']):>9} {_pm(ref['recall']):>7} {'':>8} {'':>8}")
    for r in results:
        q = r["quality"]
        print(f"{r['system']:<18} {_pm(q['frechet_classifier_distance']):>8} "
              f"{_pm(q['kernel_classifier_distance'], 1e3):>14} {_pm(q['classifier_score']):>14} "
              f"{_pm(q['precision']):>9} {_pm(q['recall']):>7} {_pm(r[likelihood], digits=1 if likelihood == 'nll' else 3):>8} "
              f"{r['train_seconds']:>8.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"any of {', '.join(SYSTEMS)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--results", default=None, help="append each system's result to this JSON-lines file")
    p.add_argument("--table", nargs="+", default=None, metavar="JSONL", help="only print the table of these files")
    args = p.parse_args()
    if args.table:
        print_table([json.loads(line) for path in args.table for line in open(path) if line.strip()])
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from machine_info import machine_line

    print(machine_line(), flush=True)  # what the figures below were measured on
    unknown = [s for s in args.systems.split(",") if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown system {unknown[0]!r}; choose from {', '.join(SYSTEMS)}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.systems.split(","):
            log(f"{name}: training {args.epochs} epochs ...")
            result = run_system(name, args.epochs, args.seed, args.quality_samples, folder)
            results.append(result)
            if args.results:
                with open(args.results, "a") as f:
                    f.write(json.dumps(result) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
