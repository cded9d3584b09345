"""Data-parallel training of the sequence models: 2 processes (gloo) on variable-length sequences keep identical
parameters (the per-step masks travel with each rank's shard, gradients are averaged), as many steps as the global
batch gives."""
import os
import socket

import numpy as np
import pyro
import torch
import torch.multiprocessing as mp


def _npz(folder):
    """64 sequences (train 48), T = 6, D = 2, lengths 2..6: a random walk observed in noise."""
    rng = np.random.default_rng(0)
    n, t = 64, 6
    z = np.cumsum(rng.normal(size=(n, t, 2)), axis=1)
    x = (z + 0.3 * rng.normal(size=(n, t, 2))).astype(np.float32)
    lengths = rng.integers(2, t + 1, size=n)
    path = os.path.join(folder, "walks.npz")
    np.savez(path, x=x, lengths=lengths)
    return path


def _train(data, out, batch_size):
    from inference.training import TrainConfig, Trainer
    from zoo.cli.assemble import build_components
    from zoo.cli.runs import make_config

    pyro.enable_validation(False)
    config = make_config(MODEL[0], MODEL[1], "elbo", data, "none", {"latent_dim": 2, "hidden": [8]},
                         TrainConfig(epochs=2, batch_size=batch_size, lr=1e-2, seed=3, progress=False), device="cpu")
    pyro.set_rng_seed(3)
    comps = build_components(config, torch.device("cpu"))
    os.makedirs(out, exist_ok=True)
    Trainer(comps.model, comps.guide, comps.objective, comps.data, TrainConfig(**config["train"]), out, MODEL[0],
            config).fit()
    return torch.cat([v.flatten() for _, v in sorted({**{f"m.{k}": v for k, v in comps.model.state_dict().items()},
                                                       **{f"g.{k}": v for k, v in comps.guide.state_dict().items()}}
                                                      .items())])


MODEL = ("lgssm", "filtering")


def _worker(rank, world, port, data, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from inference.distributed import init_from_env, shutdown

    init_from_env("cpu")
    torch.save({"params": _train(data, out, 8)}, os.path.join(out, f"rank{rank}.pt"))
    shutdown()


def test_two_process_lgssm_on_variable_length_sequences(tmp_path):
    torch.set_num_threads(1)
    data = _npz(str(tmp_path))
    out = str(tmp_path / "ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(2, port, data, out), nprocs=2, start_method="spawn")
    ranks = [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True)["params"] for r in range(2)]
    assert torch.equal(ranks[0], ranks[1]) and bool(torch.isfinite(ranks[0]).all())
    from inference.checkpoint import load

    state = load(os.path.join(out, "checkpoint.pt"))
    assert state["progress"]["global_step"] == 6  # 48 training sequences / (2 ranks x 8) = 3 steps an epoch, 2 epochs
