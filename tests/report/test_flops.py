"""Tests for agm/report/flops.py: FLOPs per image from one counted step (the cost stage's measurement)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from agm.config.params import load_params
from agm.report.flops import flops_per_image
from agm.training.throughput import random_batch, step_flops
from agm.variants import build_run

TINY = Path(__file__).resolve().parents[1] / "tiny_params.yaml"


def test_agm_costs_more_than_the_baseline_and_nothing_more_at_lambda_zero(one_thread) -> None:
    params = load_params(TINY)
    base, agm = flops_per_image(params, "baseline", 0), flops_per_image(params, "agm", 0)
    assert agm > base > 0
    at_zero = dataclasses.replace(params, lam=0.0)  # λ = 0: the AGM stage builds the baseline (agm.variants)
    assert flops_per_image(at_zero, "agm", 0) == base


def test_counted_flops_are_linear_in_the_batch(one_thread) -> None:
    """flops_per_image counts at B = 2; every counted kernel is linear in B, so B = 4 counts exactly twice."""
    params = load_params(TINY)
    c, r = params.data.channels, params.data.resolution
    cpu = torch.device("cpu")
    counts = [step_flops(build_run(params, "agm", 0, c, r, cpu).trainer, random_batch(b, (c, r, r), seed=0, device=cpu))
              for b in (2, 4)]
    assert counts[1] == 2 * counts[0]
