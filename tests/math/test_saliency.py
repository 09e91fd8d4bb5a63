"""Tests for agm.math.saliency: S(x) = Σ_c |∂V/∂x_c| and the bridge samples it is taken on (Fig. 5)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import NET_CONDITION, accumulation_terms, assert_reordered_close
from torch import nn

from agm.math.bridge import sample_bridge
from agm.math.saliency import bridge_at, potential_saliency, saliency_at_times


class _Quadratic(nn.Module):
    """V(x) = Σ w ⊙ x² per image, so ∂V/∂x = 2 w ⊙ x in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weight * x * x).flatten(1).sum(dim=1)


def test_potential_saliency_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, 5, generator=gen)
    x = torch.randn(2, 3, 4, 5, generator=gen)
    V = _Quadratic(weight)
    saliency = potential_saliency(V, x)
    assert saliency.shape == (2, 4, 5)
    torch.testing.assert_close(saliency, (2 * weight * x).abs().sum(dim=1))
    assert V.weight.grad is None and not x.requires_grad  # neither V nor the input is touched


def test_potential_saliency_of_a_real_potential(make_potential, one_thread) -> None:
    """One image's map does not depend on the rest of the batch. A batch of 3 and a batch of 1 run other
    convolution kernels (other sums' orders), so the two agree to rounding, not bitwise: float64, to the
    bound of helpers.reordered_tol (the float32 maps of two CPUs' kernels differed by 1.35e-6 against an
    atol of 1e-6 tuned on one of them)."""
    V = make_potential().eval().double()
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    saliency = potential_saliency(V, x)
    assert saliency.shape == (3, 8, 8) and (saliency >= 0).all() and saliency.dtype == torch.float64
    single = potential_saliency(V, x[1:2])
    assert_reordered_close(saliency[1:2], single, terms=accumulation_terms(V, x), condition=NET_CONDITION)


def test_bridge_at_draws_x0_then_eps() -> None:
    x1 = torch.rand(2, 1, 4, 4) * 2 - 1
    x_t = bridge_at(x1, 0.3, 0.1, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(x1.shape, generator=gen), torch.randn(x1.shape, generator=gen)
    expected = sample_bridge(x0, x1, torch.full((2,), 0.3), eps, 0.1).x_t
    torch.testing.assert_close(x_t, expected)
    alpha, beta, sigma = math.cos(0.15 * math.pi), math.sin(0.15 * math.pi), 0.1 * math.sin(0.3 * math.pi)
    torch.testing.assert_close(x_t, alpha * x0 + beta * x1 + sigma * eps)  # Eq. 6, cosine schedule


@pytest.mark.parametrize("schedule", ["cosine", "cosine_squared"])
def test_saliency_at_times_visits_the_times_in_order(schedule: str) -> None:
    V = _Quadratic(torch.ones(1, 4, 4))
    x1 = torch.rand(2, 1, 4, 4) * 2 - 1
    times = (0.1, 0.5, 0.9)
    x_t, saliency = saliency_at_times(V, x1, times, 0.1, torch.Generator().manual_seed(3), schedule)
    assert list(x_t) == list(saliency) == list(times)
    gen = torch.Generator().manual_seed(3)
    for t in times:
        expected = bridge_at(x1, t, 0.1, gen, schedule)
        torch.testing.assert_close(x_t[t], expected)
        torch.testing.assert_close(saliency[t], potential_saliency(V, expected))
        assert saliency[t].shape == (2, 4, 4)
