"""Several processes (torchrun): who this process is, how a stage becomes N processes, and the few
collectives training and sampling need.

Every process draws the same global batch and trains its slice (agm.training.loop). Per-sample quantities that
the paper normalises over the batch (the weights, Eq. 11) are all-gathered, so a run on W processes
computes the single-process step up to floating-point reduction order. Sampling shares out whole batches
(:func:`gathered`), each drawn from its own seed, so W processes write the single process's images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_processes() -> int:
    """How many processes the launcher started (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def torchrun_flags(nproc: int) -> list[str]:
    """torchrun's flags for ``nproc`` processes on this node, c10d rendezvous on a free port.

    ``localhost:0`` lets the rendezvous pick an unused port, so two pipelines on one host never collide.
    """
    return ["--nnodes=1", f"--nproc_per_node={nproc}", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0"]


def launch(nproc: int, module: str, args: Sequence[str]) -> int | None:
    """Rerun this stage as ``nproc`` processes with torchrun and return their exit status; None: do the work here.

    None when ``nproc`` is 1 or this process was itself started by a launcher (torchrun on one node, or
    one node of a multi-node job), so a stage validates its inputs first (one-line errors, no launcher
    noise) and only then fans out. This process becomes torchrun's agent: ``torch.distributed.run``
    with :func:`torchrun_flags` and ``-m module``, and the stage's own ``args`` handed over as they are
    (not through torchrun's command line, which would take ``--run`` for its abbreviation ``--run-path``).
    """
    if nproc <= 1 or launched_processes() > 1:
        return None
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    flags = [*torchrun_flags(nproc), "-m", module]
    config = parse_args(flags)
    config.training_script_args = list(args)
    print(f"launch: torchrun {' '.join(flags)} {' '.join(args)}", flush=True)
    try:
        run(config)
    except ChildFailedError:  # torchrun has printed which rank failed and how
        return 1
    return 0


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


def gathered(fn: Callable[[int], T], n: int) -> Iterator[tuple[int, T]]:
    """Yield (i, fn(i)) for i = 0 … n − 1 in order, the calls shared among the processes.

    Items go round-robin (process r computes r, r + W, …); after each round rank 0 gathers the round's
    results (any picklable value) and yields them; the other ranks yield nothing. One process yields
    every item itself.
    """
    rank, size = world()
    for first in range(0, n, size):
        mine = fn(first + rank) if first + rank < n else None
        if size == 1:
            yield first, mine
            continue
        parts: list[T | None] | None = [None] * size if rank == 0 else None
        dist.gather_object(mine, parts, dst=0)
        if parts is not None:
            for j, part in enumerate(parts[: n - first]):
                yield first + j, part
