"""Several processes (torchrun): who this process is, and the few collectives a training step needs.

Every process draws the same global batch and trains its slice (agm.train). Per-sample quantities that
the paper normalises over the batch (the weights, Eq. 11) are all-gathered, so a run on W processes
computes the single-process step up to floating-point reduction order.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_processes() -> int:
    """How many processes the launcher started (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(device: torch.device) -> int:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU) when launched by torchrun; return the rank."""
    if launched_processes() <= 1:
        return 0
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank()


def close_process_group() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (nothing outside torchrun)."""
    if world()[1] > 1:
        dist.barrier()


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a detached per-process scalar over the processes (x itself in one process).

    Every process holds an equal slice of the global batch, so the mean of the slices' batch means is
    the global batch mean: what a single process would log.
    """
    x = x.detach()
    _, size = world()
    if size == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / size


def gather(x: torch.Tensor) -> torch.Tensor:
    """The global batch of a per-sample tensor: the slices of all processes, in rank order.

    This process's own slice stays in the autograd graph; the other slices are constants.
    """
    rank, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts)


def local_slice(x_all: torch.Tensor) -> torch.Tensor:
    """This process's slice of a global-batch tensor (all of it in one process)."""
    rank, size = world()
    b = len(x_all) // size
    return x_all[rank * b : (rank + 1) * b]
