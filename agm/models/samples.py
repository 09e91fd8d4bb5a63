"""A model's samples drawn by all torchrun processes together (the sample and steps stages).

Batch b of the n samples comes from its own generator (agm.math.solver.sample_batch), so the processes can
share the batches out (agm.training.distributed.gathered) and rank 0 still receives exactly the images one process
would draw. Kept apart from agm.training.distributed so that training does not import the solver
(an edit of the solver re-runs no training stage).

On a CPU one process also draws its batches on several threads at once, each running its operations on one
core (:func:`cpu_workers`): small convolutions use two cores poorly inside one operation, and two batches side
by side draw about 1.4× as many images per second on a 2-core CPU as one batch on two cores
(docs/notes/default-profile.md). A batch's images depend neither on which thread draws it nor on how many run
beside it (each has its own generator, and every operation runs on one core). That they equal one batch on two
cores' images is a property of the CPU's kernels: byte for byte on the 2-core Xeon where it was measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from agm.io.data import to_uint8
from agm.math.solver import Drift, sample_batch
from agm.training.distributed import gathered, world


def sampling_drift(f: torch.nn.Module, device: torch.device | str, *, amp: str = "none", channels_last: bool = False,
                   compile: bool = False) -> Drift:
    """The drift as sampling runs it (params ``sample.amp``, ``sample.channels_last``, ``sample.compile``).

    All off, ``f`` itself: the images are those of the plain float32 network, byte for byte. ``amp="bf16"``
    evaluates it under bf16 autocast and returns float32 (the solver's state stays float32); ``channels_last``
    lays the network's weights and each input out channels-last; ``compile`` wraps it in ``torch.compile``.
    """
    if amp not in ("none", "bf16"):
        raise ValueError(f"amp must be none or bf16, got {amp!r}")
    if channels_last:
        f = f.to(memory_format=torch.channels_last)
    net = torch.compile(f) if compile else f
    if amp == "none" and not channels_last:
        return net
    device_type = torch.device(device).type

    def drift(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            return net(x, t).float()

    return drift


def cpu_workers(device: torch.device | str) -> int:
    """How many batches one process draws at once: on a CPU, one per intra-op thread torch would use (one
    per core by default) when this is the only process; elsewhere one (a GPU runs one batch at a time, and
    torchrun's processes already share the CPU's cores)."""
    if torch.device(device).type != "cpu" or world()[1] > 1:
        return 1
    return max(1, torch.get_num_threads())


@contextlib.contextmanager
def _one_thread_per_op() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gathered_samples(
    f: Drift,
    n: int,
    batch_size: int,
    image_shape: tuple[int, int, int],
    nfe: int,
    g: float,
    seed: int,
    device: torch.device | str = "cpu",
    workers: int = 1,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (batch index, uint8 images (≤ batch_size, C, H, W)) for the ``n`` samples of training seed ``seed``.

    The batches are drawn by all processes in turn and yielded in order on rank 0; other ranks yield
    nothing, and every rank must run the generator to its end. With ``workers`` > 1 (one process only) that
    many batches are drawn at once on threads whose operations each use one core (:func:`cpu_workers`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    def draw(b: int) -> np.ndarray:
        return to_uint8(sample_batch(f, b, n, batch_size, image_shape, nfe, g, seed, device)).cpu().numpy()

    n_batches = -(-n // batch_size)
    if workers == 1 or world()[1] > 1 or n_batches == 1:
        yield from gathered(draw, n_batches)
        return
    with _one_thread_per_op(), ThreadPoolExecutor(min(workers, n_batches)) as pool:
        yield from enumerate(pool.map(draw, range(n_batches)))
