"""The stochastic bridge between noise and data (docs/spec.md §1, paper Eqs. 6-9).

    x_t = α(t) x0 + β(t) x1 + σ(t) ε                                      (6)
    v_t = α'(t) x0 + β'(t) x1 + σ'(t) ε                                   (9)

with x0 ~ N(0, I) noise, x1 an image in [-1, 1], ε ~ N(0, I), t ~ U[0, 1] and
σ(t) = σ_max sin(π t) (8). Two interpolation schedules (7) fit the paper's words:

- ``"cosine"`` (default, chosen): α = cos(πt/2), β = sin(πt/2), so α² + β² = 1;
- ``"cosine_squared"``: α = cos²(πt/2), β = sin²(πt/2), so α + β = 1.

Both give x_t = x0 at t = 0 (noise) and x_t = x1 at t = 1 (data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Schedule = Literal["cosine", "cosine_squared"]
SCHEDULES: tuple[str, ...] = ("cosine", "cosine_squared")


@dataclass(frozen=True)
class ScheduleValues:
    """α, β, σ and their time derivatives at t; each of shape (B,)."""

    alpha: torch.Tensor
    beta: torch.Tensor
    sigma: torch.Tensor
    d_alpha: torch.Tensor
    d_beta: torch.Tensor
    d_sigma: torch.Tensor


@dataclass(frozen=True)
class BridgeSample:
    """A bridge sample x_t and its regression target v_t (both (B, C, H, W)) at times t: (B,)."""

    x_t: torch.Tensor
    target: torch.Tensor
    t: torch.Tensor
    schedule: ScheduleValues


def schedule_values(t: torch.Tensor, sigma_max: float, schedule: Schedule = "cosine") -> ScheduleValues:
    """Eqs. (7)-(8) and their derivatives at t: (B,)."""
    half = 0.5 * math.pi
    c, s = torch.cos(half * t), torch.sin(half * t)
    if schedule == "cosine":
        alpha, beta = c, s
        d_alpha, d_beta = -half * s, half * c
    elif schedule == "cosine_squared":
        alpha, beta = c * c, s * s
        # d/dt cos²(πt/2) = -(π/2) sin(πt);  d/dt sin²(πt/2) = (π/2) sin(πt)
        d_alpha = -half * torch.sin(math.pi * t)
        d_beta = -d_alpha
    else:
        raise ValueError(f"unknown bridge schedule {schedule!r}; expected one of {SCHEDULES}")
    sigma = sigma_max * torch.sin(math.pi * t)
    d_sigma = math.pi * sigma_max * torch.cos(math.pi * t)
    return ScheduleValues(alpha, beta, sigma, d_alpha, d_beta, d_sigma)


def sample_bridge(
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    sigma_max: float,
    schedule: Schedule = "cosine",
) -> BridgeSample:
    """Eqs. (6) and (9): the bridge sample x_t and its target velocity v_t.

    Args:
        x0: noise, (B, C, H, W).
        x1: data in [-1, 1], (B, C, H, W).
        t: times in [0, 1], (B,).
        eps: bridge noise ε, (B, C, H, W).
        sigma_max: peak bridge width σ_max (docs/spec.md §1, chosen 0.1).
        schedule: "cosine" or "cosine_squared" (docs/spec.md §1).
    """
    sv = schedule_values(t, sigma_max, schedule)
    shape = (-1,) + (1,) * (x1.ndim - 1)

    def bc(v: torch.Tensor) -> torch.Tensor:
        return v.view(shape).to(x1.dtype)

    x_t = bc(sv.alpha) * x0 + bc(sv.beta) * x1 + bc(sv.sigma) * eps
    target = bc(sv.d_alpha) * x0 + bc(sv.d_beta) * x1 + bc(sv.d_sigma) * eps
    return BridgeSample(x_t=x_t, target=target, t=t, schedule=sv)
