"""Training: exact resume after a crash mid-epoch, checkpoints safe to load, early stopping, warm-up."""
import json
import os

import pytest
import torch

from inference import run_dir as rd
from inference.checkpoint import load, save_atomic
from zoo.cli.runs import make_config, train_run
from inference.training import TrainConfig
from zoo.errors import RunDirError


class Crash(Exception):
    pass


def _config(epochs=3, **train):
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, seed=7, progress=False, validate=True, **train)
    return make_config("vae", "diagonal", "elbo", "digits", "dynamic",
                       {"latent_dim": 4, "hidden": [32], "likelihood": "bernoulli"}, cfg, device="cpu")


def _final_params(run_dir):
    return load(os.path.join(run_dir, rd.CHECKPOINT))


def test_resume_after_a_crash_mid_epoch_gives_the_same_parameters(tmp_path):
    full, crashed = str(tmp_path / "full"), str(tmp_path / "crashed")
    train_run(_config(checkpoint_every=5), full, progress=False)

    def crash_at(step):
        if step == 31:  # digits: 1437 points / 64 = 23 steps per epoch -> mid second epoch, last checkpoint at 30
            raise Crash()

    with pytest.raises(Crash):
        train_run(_config(checkpoint_every=5), crashed, on_step=crash_at, progress=False)
    assert _final_params(crashed)["progress"]["global_step"] == 30
    train_run(json.load(open(os.path.join(crashed, rd.CONFIG))), crashed, resume=True, progress=False)

    a, b = _final_params(full), _final_params(crashed)
    for part in ("model", "guide"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), f"{part}.{name} differs after resume"
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 3 * 23
    # timings and the count of traced steps (inference/traced_step.py: the resumed process traces again after its own
    # 50 eager steps) differ; everything else is the same, also across the mix of traced and eager steps
    assert sum(r["traced_steps"] for r in rd.read_metrics(full)) > 0
    assert rd.read_metrics(full) == [dict(r, seconds=m["seconds"], valid_seconds=m["valid_seconds"],
                                          traced_steps=m["traced_steps"])
                                     for r, m in zip(rd.read_metrics(crashed), rd.read_metrics(full))]


def test_checkpoints_are_plain_tensors_and_refuse_another_model(tmp_path):
    run = str(tmp_path / "run")
    train_run(_config(epochs=1), run, progress=False)
    state = torch.load(os.path.join(run, rd.CHECKPOINT), weights_only=True)  # no pickled objects
    assert state["model_name"] == "vae"
    with pytest.raises(RunDirError, match="holds a 'vae' model, not 'm2'"):
        load(os.path.join(run, rd.CHECKPOINT), expected_model="m2")


def test_atomic_write_leaves_the_old_file_when_saving_fails(tmp_path):
    target = str(tmp_path / "c.pt")
    save_atomic({"format": "zoo-checkpoint-1", "v": torch.ones(2)}, target)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        save_atomic({"bad": Unsaveable()}, target)
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(2))
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_early_stopping_and_best_checkpoint(tmp_path):
    run = str(tmp_path / "es")
    # a learning rate this large makes the validation loss stop improving quickly
    cfg = _config(epochs=30, patience=2)
    cfg["train"]["lr"] = 0.3
    state = train_run(cfg, run, progress=False)
    metrics = rd.read_metrics(run)
    best = min(metrics, key=lambda r: r["valid_loss"])
    assert state["stopped_early"] and len(metrics) < 30
    assert len(metrics) - 1 - best["epoch"] == 2  # stopped exactly `patience` epochs after the best one
    assert load(os.path.join(run, rd.BEST))["epoch"] == best["epoch"]


@pytest.mark.parametrize("checkpoint_every", [0, 5])
def test_divergence_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path, checkpoint_every):
    """A NaN is caught where the loss is read anyway (mid-epoch checkpoint, epoch end), not per step, and nothing
    non-finite is written: checkpoint.pt is the last finite state, one line of error says what to do."""
    from inference.training import Trainer
    from zoo.cli.assemble import build_components
    from zoo.errors import TrainingDiverged

    out = str(tmp_path / "run")
    config = _config(epochs=3, checkpoint_every=checkpoint_every)
    comps = build_components(config, torch.device("cpu"))
    os.makedirs(out)
    trainer = Trainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]), out,
                      "vae", config)

    def poison(step):
        if step == 30:  # mid second epoch (23 steps an epoch)
            with torch.no_grad():
                next(comps.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="smaller --lr"):
        trainer.fit(on_step=poison)
    state = load(os.path.join(out, rd.CHECKPOINT))
    assert state["progress"]["global_step"] == (30 if checkpoint_every else 23)
    assert all(bool(torch.isfinite(t).all()) for part in ("model", "guide") for t in state[part].values())
    assert len(rd.read_metrics(out)) == 1  # epoch 2 never reached the metrics


def test_warmup_ramps_the_kl_weight_linearly(tmp_path):
    from inference.training import Trainer

    t = Trainer.__new__(Trainer)
    t.config, t.steps_per_epoch = TrainConfig(beta=2.0, warmup=4), 10
    assert t.kl_weight(0, 0) == pytest.approx(2.0 * 1 / 40)
    assert t.kl_weight(1, 9) == pytest.approx(2.0 * 20 / 40)
    assert t.kl_weight(3, 9) == pytest.approx(2.0) and t.kl_weight(7, 0) == pytest.approx(2.0)
    t.config = TrainConfig(beta=0.5, warmup=0)
    assert t.kl_weight(0, 0) == 0.5


def test_bf16_autocast_keeps_log_densities_in_float32():
    import pyro

    from guides.base import build_guide
    from inference.objectives import build_objective
    from zoo.vae import VAE

    torch.manual_seed(0)
    model = VAE(64, latent_dim=4, hidden=(32,))
    guide = build_guide("diagonal", model)
    x = torch.bernoulli(torch.rand(256, 64))
    pyro.set_rng_seed(1)
    full = build_objective("elbo").loss(model, guide, x)
    pyro.set_rng_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = build_objective("elbo").loss(model, guide, x)
    assert half.dtype == torch.float32
    assert abs(half.item() - full.item()) / abs(full.item()) < 0.02
    half.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
