"""Data-parallel training: 2 processes on loopback (gloo) hold identical parameters and match one process that
trains on the combined batch; a distributed run killed mid-epoch and resumed ends exactly where an uninterrupted one
does; the torchrun launch path works end to end."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from inference.training import TrainConfig
from zoo.cli.runs import make_config

BATCH = 256


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data_file(folder):
    """1280 binary points (train split: 1024 = 2 global batches of 2 x 256) with structure to learn."""
    rng = np.random.default_rng(0)
    protos = rng.random((4, 30))
    x = (rng.random((1280, 30)) < protos[rng.integers(0, 4, 1280)]).astype(np.float32)
    path = os.path.join(folder, "points.npz")
    np.savez(path, x=x)
    return path


class Crash(Exception):
    pass


def _config(data, batch_size, checkpoint_every=0):
    train = TrainConfig(epochs=2, batch_size=batch_size, lr=1e-2, seed=3, progress=False,
                        checkpoint_every=checkpoint_every)
    return make_config("vae", "diagonal", "iwae:16", data, "none", {"latent_dim": 3, "hidden": [32],
                                                                 "likelihood": "bernoulli"}, train, device="cpu")


def _build(data, batch_size, checkpoint_every=0):
    import pyro

    from zoo.cli.assemble import build_components

    config = _config(data, batch_size, checkpoint_every)
    pyro.set_rng_seed(3)
    return config, build_components(config, torch.device("cpu"))


def _train(data, batch_size, out, checkpoint_every=0, crash_at=None, resume=False):
    """Train as `zoo train` does and return this process's final parameters (in memory, not from a file);
    ``crash_at``: raise :class:`Crash` after that global step (its checkpoint written), as a killed run would stop."""
    from inference.training import Trainer

    config, comps = _build(data, batch_size, checkpoint_every)
    os.makedirs(out, exist_ok=True)

    def on_step(step):
        if step == crash_at:
            raise Crash()

    Trainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]), out, "vae",
            config).fit(resume=resume, on_step=on_step)
    return _flat(comps.model.state_dict())


def _flat(state):
    return torch.cat([v.flatten() for k, v in sorted(state.items())])


def _worker(rank, world, port, data, out, crash_at=None, resume=False):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from inference.distributed import init_from_env

    init_from_env("cpu")
    try:
        params = _train(data, BATCH, out, checkpoint_every=1 if crash_at or resume else 0, crash_at=crash_at,
                        resume=resume)
        torch.save({"params": params}, os.path.join(out, f"rank{rank}.pt"))
    except Crash:  # every rank stops after the same step, as when the job is killed
        pass
    from inference.distributed import shutdown

    shutdown()


def _spawn(data, out, crash_at=None, resume=False):
    mp.start_processes(_worker, args=(2, _free_port(), data, out, crash_at, resume), nprocs=2, start_method="spawn")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("ddp"))
    data = _data_file(folder)
    ddp_out = os.path.join(folder, "ddp")
    _spawn(data, ddp_out)
    ranks = [torch.load(os.path.join(ddp_out, f"rank{r}.pt"), weights_only=True)["params"] for r in range(2)]
    combined = _train(data, 2 * BATCH, os.path.join(folder, "combined"))
    alone = _train(data, BATCH, os.path.join(folder, "alone"))  # one rank's shard stream, no gradient averaging
    init = _flat(_build(data, BATCH)[1].model.state_dict())
    return ddp_out, ranks, combined, alone, init


def test_ranks_hold_identical_parameters(runs):
    ddp_out, ranks, _, _, _ = runs
    assert torch.equal(ranks[0], ranks[1])
    state = torch.load(os.path.join(ddp_out, "checkpoint.pt"), weights_only=True)
    assert torch.equal(_flat(state["model"]), ranks[0])  # rank 0 wrote the checkpoint
    assert len(state["rng"]["torch_ranks"]) == 2 and not torch.equal(*state["rng"]["torch_ranks"])
    assert state["progress"]["global_step"] == 4  # 2 epochs x (1024 // 512)


def test_two_processes_match_one_process_on_the_combined_batch(runs):
    _, ranks, combined, alone, init = runs
    moved = (combined - init).norm()
    # the same data each step, only the reparameterisation noise differs: far closer than without averaging
    assert (ranks[0] - combined).norm() < 0.4 * moved
    assert (ranks[0] - combined).norm() < 0.5 * (alone - combined).norm()


def test_a_killed_distributed_run_resumes_exactly(runs, tmp_path):
    ddp_out, ranks, _, _, _ = runs
    data = _data_file(str(tmp_path))
    out = str(tmp_path / "killed")
    _spawn(data, out, crash_at=3)  # 2 steps an epoch: killed after the first step of epoch 2
    state = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)
    assert state["progress"]["global_step"] == 3 and state["progress"]["step"] == 1
    assert not os.path.exists(os.path.join(out, "rank0.pt"))
    _spawn(data, out, resume=True)
    resumed = [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True)["params"] for r in range(2)]
    assert torch.equal(resumed[0], resumed[1])
    assert torch.equal(resumed[0], ranks[0])  # bit for bit the uninterrupted run's parameters
    from inference import run_dir as rd

    for got, want in zip(rd.read_metrics(out), rd.read_metrics(ddp_out), strict=True):  # losses summed over ranks
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-12)
        assert got["valid_loss"] == pytest.approx(want["valid_loss"], rel=1e-12)


def test_torchrun_launch(tmp_path):
    data = _data_file(str(tmp_path))
    out = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "zoo", "train", "--distributed", "--data", data, "--binarize", "none", "--epochs", "1",
           "--batch-size", "128", "--latent-dim", "2", "--hidden", "16", "--no-progress", "--out", out]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("trained 1 epochs") == 1  # rank 0 alone reports
    assert len(open(os.path.join(out, "metrics.jsonl")).readlines()) == 1
