"""A model's samples drawn by all torchrun processes together (the sample and steps stages).

Batch b of the n samples comes from its own generator (agm.math.solver.sample_batch), so the processes can
share the batches out (agm.training.distributed.gathered) and rank 0 still receives exactly the images one process
would draw. Kept apart from agm.training.distributed so that training does not import the solver
(an edit of the solver re-runs no training stage).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from agm.io.data import to_uint8
from agm.math.solver import Drift, sample_batch
from agm.training.distributed import gathered


def gathered_samples(
    f: Drift,
    n: int,
    batch_size: int,
    image_shape: tuple[int, int, int],
    nfe: int,
    g: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (batch index, uint8 images (≤ batch_size, C, H, W)) for the ``n`` samples of training seed ``seed``.

    The batches are drawn by all processes in turn and yielded in order on rank 0; other ranks yield
    nothing, and every rank must run the generator to its end.
    """

    def draw(b: int) -> np.ndarray:
        return to_uint8(sample_batch(f, b, n, batch_size, image_shape, nfe, g, seed, device)).cpu().numpy()

    yield from gathered(draw, -(-n // batch_size))
