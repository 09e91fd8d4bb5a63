"""The training step's cost in FLOPs per image, counted where the networks are built (the `cost` stage).

    FLOPs per image   F_step / B, F_step counted by torch.utils.flop_counter over one training step of the
                      variant at this run's sizes (agm.training.throughput.step_flops: matmuls, convolutions and
                      attention, forward and backward, 2 per multiply-add), on the CPU at B = 2: every counted
                      kernel is linear in B, so the ratio holds at any batch size and on any machine

The stage writes the counts as data (metrics/cost.json); the report's cost table (agm.report.cost) reads them.
"""

from __future__ import annotations

import torch

from agm.config.params import Params
from agm.training.throughput import random_batch, step_flops
from agm.variants import build_run

FLOP_BATCH = 2
COUNTED = ("baseline", "agm")
"""The variants whose FLOPs are counted: the comparison the paper's cost claim is about."""


def flops_per_image(params: Params, variant: str, seed: int) -> float:
    """FLOPs of one training step of ``variant`` per training image, at this run's sizes (module docstring)."""
    channels, resolution = params.data.channels, params.data.resolution
    cpu = torch.device("cpu")
    trainer = build_run(params, variant, seed, channels, resolution, cpu).trainer
    batch = random_batch(FLOP_BATCH, (channels, resolution, resolution), seed=seed, device=cpu)
    return step_flops(trainer, batch) / FLOP_BATCH
