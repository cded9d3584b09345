"""Data-parallel training through torch.distributed (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node N -m zoo train --distributed ...`` starts N processes with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set; :func:`init_from_env` joins the process group (gloo on CPU, nccl on CUDA). Each
process computes the loss of its shard of the global batch through a ``DistributedDataParallel``-wrapped loss module,
whose backward all-reduces (averages) the gradients, so every rank applies the same Adam step and the ranks' parameters
stay identical. Sharding (:func:`shard`): the global batch of step s is ``perm[s*B*W:(s+1)*B*W]`` of the epoch's
seeded permutation, exactly the batch a single process with batch size B*W would see, and rank r takes its r-th slice
of B points: the distributed sampler of this loop. Rank 0 alone writes checkpoints, metrics and reports.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from zoo.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1 or (dist.is_available() and dist.is_initialized())

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def init_from_env(device_name: str = "auto") -> tuple:
    """Join the process group described by torchrun's environment; returns (DistInfo, device)."""
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError("--distributed expects torchrun's environment (missing " + ", ".join(missing) + "); "
                          "launch with `torchrun --nproc_per_node N -m zoo train --distributed ...`")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank), device


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return SINGLE


def shard(global_idx: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's slice of a global batch of indices (equal slices; the loop drops an incomplete last batch)."""
    if info.world_size == 1:
        return global_idx
    return global_idx.tensor_split(info.world_size)[info.rank]


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world_size == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def gather_rng_states(info: DistInfo) -> list:
    """Every rank's torch RNG state (so that a resumed distributed run continues exactly)."""
    state = torch.get_rng_state()
    if info.world_size == 1:
        return [state]
    states = [torch.empty_like(state) for _ in range(info.world_size)]
    dist.all_gather(states, state)
    return states


def barrier(info: DistInfo):
    if info.world_size > 1:
        dist.barrier()


def shutdown():
    """Leave the process group together: a barrier first, so that no rank tears down its connections while another
    is still writing or communicating (gloo aborts the process then), then destroy the group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class LossModule(nn.Module):
    """The objective as an ``nn.Module`` over model and guide, so DDP can wrap it: forward returns the summed loss."""

    def __init__(self, model, guide, objective):
        super().__init__()
        self.model, self.guide, self.objective = model, guide, objective

    def forward(self, x, y=None):
        return self.objective.loss(self.model, self.guide, x, y)


def wrap(model, guide, objective, info: DistInfo, device):
    module = LossModule(model, guide, objective)
    if info.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
