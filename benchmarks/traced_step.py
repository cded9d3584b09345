"""The traced training step (inference/traced_step.py) against the eager step, for every registered model.

For each model (its default guide, objective, data and binarization; two-player objectives through their own
trainer), two Trainers step the same modules on the same mini-batch stream, alternating in blocks of five steps so
that both see the same machine load: ``--step eager`` and ``--step traced`` (traced at a shape's second step).
Printed per model: milliseconds per step of both (medians over the timed steps, after the warm-up and the trace),
the ratio traced / eager, the seconds the trace and its bit-for-bit check took, and whether
the step was traced (or why not). The network sizes are the models' defaults unless --hidden / --latent-dim say
otherwise; models that need another run (m1+m2) are left out.

    python benchmarks/traced_step.py --steps 20 --batch-size 64
    python benchmarks/traced_step.py --models vae,vrnn,glow
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyro  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NEEDS_ANOTHER_RUN = {"m1+m2": "needs a trained M1 (--m1-run)"}


def components(name, hidden, latent_dim):
    from inference.training import TrainConfig
    from zoo.cli.assemble import build_components
    from zoo.cli.runs import make_config
    from zoo.cli.semi_supervised import model_default

    binarize = model_default(name, "binarize", "dynamic")
    data = model_default(name, "data", "mnist5k")
    options = {"latent_dim": latent_dim or model_default(name, "latent_dim", 20),
               "hidden": hidden or model_default(name, "hidden", (400,))}
    if options["hidden"] is not None:
        options["hidden"] = list(options["hidden"])
    config = make_config(name, model_default(name, "guide", "diagonal"), model_default(name, "objective", "elbo"),
                         data, binarize, options, TrainConfig(epochs=1), device="cpu")
    return config, build_components(config, torch.device("cpu"))


def make_trainer(comps, config, step, batch_size):
    from inference.adversarial_training import AdversarialTrainer
    from inference.training import Trainer, TrainConfig

    train = TrainConfig(batch_size=batch_size, step=step, progress=False, precision="fp32",
                        critic=config["train"].get("critic"))
    if comps.critic is None:
        return Trainer(comps.model, comps.guide, comps.objective, comps.data, train, tempfile.mkdtemp())
    trainer = AdversarialTrainer(comps.model, comps.guide, comps.objective, comps.data, train, tempfile.mkdtemp(),
                                 critic=comps.critic)
    trainer._begin_epoch()
    return trainer


def time_steps(comps, config, n_steps, batch_size, block=5):
    """Steps of an eager and a traced trainer on the same modules, alternating in blocks of ``block`` steps (so both
    see the same machine load): (eager ms per step, traced ms per step, seconds of the step that traced, the traced
    trainer)."""
    trainers = {step: make_trainer(comps, config, step, batch_size) for step in ("eager", "traced")}
    pyro.enable_validation(False)
    comps.model.train(), comps.guide.train()
    x, y = comps.data.train_epoch_x(0), comps.data.train.y
    n = x.shape[0] // batch_size
    times = {"eager": [], "traced": []}
    trace_seconds, i = 0.0, 0

    def one(step, record):
        nonlocal i
        trainer = trainers[step]
        sl = slice((i % n) * batch_size, (i % n + 1) * batch_size)
        t0 = time.perf_counter()
        trainer.train_step(x[sl], None if y is None else y[sl], 0, i)
        dt = time.perf_counter() - t0
        trainer.progress["global_step"] += 1
        i += 1
        if record:
            times[step].append(dt)
        return dt

    for step in ("eager", "traced"):  # warm-up; the traced trainer traces at its second step
        for k in range(3):
            dt = one(step, False)
            if step == "traced" and k == 1:
                trace_seconds = dt
    while len(times["traced"]) < n_steps:
        for step in ("eager", "traced"):
            for _ in range(block):
                one(step, True)
    return (1000 * statistics.median(times["eager"]), 1000 * statistics.median(times["traced"]), trace_seconds,
            trainers["traced"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated (default: every registered model)")
    p.add_argument("--steps", type=int, default=20, help="timed steps of each mode")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", default="", help="e.g. 400 (default: each model's own)")
    p.add_argument("--latent-dim", type=int, default=0)
    args = p.parse_args()
    from machine_info import machine_line

    from zoo.cli.assemble import register_all
    from zoo.model import MODELS

    register_all()
    print(machine_line(), flush=True)
    names = [n for n in args.models.split(",") if n] or [e.name for e in MODELS]
    hidden = [int(h) for h in args.hidden.split(",") if h] or None
    print(f"batch {args.batch_size}, {args.steps} timed steps per mode, CPU threads {torch.get_num_threads()}")
    print(f"{'model':<11} {'objective':<11} {'eager ms':>9} {'traced ms':>10} {'ratio':>6} {'trace s':>8}  traced?")
    for name in names:
        if name in NEEDS_ANOTHER_RUN:
            print(f"{name:<11} left out: {NEEDS_ANOTHER_RUN[name]}")
            continue
        config, comps = components(name, hidden, args.latent_dim)
        torch.manual_seed(0)
        eager, traced, trace_s, trainer = time_steps(comps, config, args.steps, args.batch_size)
        count, reasons = trainer._traced_count(), trainer._traced_reasons()
        status = "yes" if count else ("no: " + "; ".join(reasons) if reasons else "no")
        print(f"{name:<11} {config['objective']:<11} {eager:>9.2f} {traced:>10.2f} {traced / eager:>6.2f} "
              f"{trace_s:>8.2f}  {status[:90]}", flush=True)


if __name__ == "__main__":
    main()
