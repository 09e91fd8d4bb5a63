"""Tests for agm/math/bridge.py: schedules (docs/spec.md §1, Eqs. 6-9) vs closed forms and finite differences."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from agm.math.bridge import SCHEDULES, BridgeSample, ScheduleValues, sample_bridge, schedule_values

SIGMA_MAX = 0.1


def _fixed_inputs(b: int = 5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    shape = (b, 2, 3, 3)
    x0 = torch.randn(shape, generator=gen, dtype=dtype)
    x1 = torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1
    eps = torch.randn(shape, generator=gen, dtype=dtype)
    return x0, x1, eps


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_boundaries_noise_at_zero_data_at_one(schedule):
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    sv = schedule_values(t, SIGMA_MAX, schedule)
    ends = torch.tensor([1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(sv.alpha, ends, atol=1e-12, rtol=0)
    torch.testing.assert_close(sv.beta, ends.flip(0), atol=1e-12, rtol=0)
    torch.testing.assert_close(sv.sigma, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)

    x0, x1, eps = _fixed_inputs(b=2)
    bridge = sample_bridge(x0, x1, t, eps, SIGMA_MAX, schedule)
    torch.testing.assert_close(bridge.x_t[0], x0[0], atol=1e-12, rtol=0)  # t = 0: noise
    torch.testing.assert_close(bridge.x_t[1], x1[1], atol=1e-12, rtol=0)  # t = 1: data


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_sigma_peaks_at_one_half(schedule):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    sigma = schedule_values(t, SIGMA_MAX, schedule).sigma
    assert int(sigma.argmax()) == 50
    assert float(sigma[50]) == pytest.approx(SIGMA_MAX, abs=1e-15)
    assert float(sigma.min()) >= -1e-15
    torch.testing.assert_close(sigma, SIGMA_MAX * torch.sin(math.pi * t))


def test_schedule_closed_forms():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    cos = schedule_values(t, SIGMA_MAX, "cosine")
    torch.testing.assert_close(cos.alpha, torch.cos(math.pi * t / 2))
    torch.testing.assert_close(cos.beta, torch.sin(math.pi * t / 2))
    torch.testing.assert_close(cos.alpha**2 + cos.beta**2, torch.ones_like(t))
    sq = schedule_values(t, SIGMA_MAX, "cosine_squared")
    torch.testing.assert_close(sq.alpha, torch.cos(math.pi * t / 2) ** 2)
    torch.testing.assert_close(sq.alpha + sq.beta, torch.ones_like(t))
    # docs/spec.md §1: σ'(t) = π σ_max cos(π t); cosine: α' = -(π/2) sin(πt/2), β' = (π/2) cos(πt/2)
    torch.testing.assert_close(cos.d_sigma, math.pi * SIGMA_MAX * torch.cos(math.pi * t))
    torch.testing.assert_close(cos.d_alpha, -(math.pi / 2) * torch.sin(math.pi * t / 2))
    torch.testing.assert_close(cos.d_beta, (math.pi / 2) * torch.cos(math.pi * t / 2))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedule_derivatives_match_finite_differences(schedule):
    t = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    h = 1e-6
    sv, up, dn = (schedule_values(s, SIGMA_MAX, schedule) for s in (t, t + h, t - h))
    for name in ("alpha", "beta", "sigma"):
        fd = (getattr(up, name) - getattr(dn, name)) / (2 * h)
        torch.testing.assert_close(getattr(sv, f"d_{name}"), fd, atol=1e-8, rtol=0, msg=name)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_target_is_time_derivative_of_x_t(schedule):
    """v_t (Eq. 9) = d x_t / dt (Eq. 6) at fixed x0, x1, ε, by central differences in float64."""
    x0, x1, eps = _fixed_inputs()
    t = torch.tensor([0.0, 0.1, 0.37, 0.5, 0.93], dtype=torch.float64)
    h = 1e-6
    bridge = sample_bridge(x0, x1, t, eps, SIGMA_MAX, schedule)
    up = sample_bridge(x0, x1, t + h, eps, SIGMA_MAX, schedule).x_t
    dn = sample_bridge(x0, x1, t - h, eps, SIGMA_MAX, schedule).x_t
    fd = (up - dn) / (2 * h)
    torch.testing.assert_close(bridge.target, fd, atol=1e-8, rtol=0)
    # the target is not trivially zero or x1 - x0: it depends on ε through σ'(t)
    assert not torch.allclose(bridge.target, x1 - x0)


def test_bridge_sample_fields_and_shapes():
    x0, x1, eps = _fixed_inputs(b=4, dtype=torch.float32)
    t = torch.rand(4)
    bridge = sample_bridge(x0, x1, t, eps, SIGMA_MAX)
    assert isinstance(bridge, BridgeSample) and isinstance(bridge.schedule, ScheduleValues)
    assert bridge.x_t.shape == bridge.target.shape == x1.shape == (4, 2, 3, 3)
    assert bridge.x_t.dtype == bridge.target.dtype == torch.float32
    assert bridge.t is t
    for field in dataclasses.fields(ScheduleValues):
        assert getattr(bridge.schedule, field.name).shape == (4,), field.name
    # Eq. (6) per sample, broadcast over (C, H, W)
    sv = bridge.schedule
    expected = sv.alpha[:, None, None, None] * x0 + sv.beta[:, None, None, None] * x1 \
        + sv.sigma[:, None, None, None] * eps
    torch.testing.assert_close(bridge.x_t, expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bridge.x_t = x0  # type: ignore[misc]


def test_default_schedule_is_cosine():
    x0, x1, eps = _fixed_inputs(b=3)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64)
    default = sample_bridge(x0, x1, t, eps, SIGMA_MAX)
    cosine = sample_bridge(x0, x1, t, eps, SIGMA_MAX, "cosine")
    squared = sample_bridge(x0, x1, t, eps, SIGMA_MAX, "cosine_squared")
    assert torch.equal(default.x_t, cosine.x_t)
    assert not torch.allclose(default.x_t, squared.x_t)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="linear"):
        schedule_values(torch.tensor([0.5]), SIGMA_MAX, "linear")  # type: ignore[arg-type]
    x0, x1, eps = _fixed_inputs(b=1)
    with pytest.raises(ValueError, match="unknown bridge schedule"):
        sample_bridge(x0, x1, torch.tensor([0.5]), eps, SIGMA_MAX, "sigmoid")  # type: ignore[arg-type]
