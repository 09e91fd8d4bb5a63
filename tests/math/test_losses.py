"""Tests for agm/math/losses.py: Eqs. (10), (11), (13) on hand-computed inputs, and the stop-gradient."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import reordered_tol

from agm.math.losses import drift_loss, importance_weights, potential_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_potential_loss_by_hand():
    v_bridge = torch.tensor([2.0, 0.5, -1.0])
    v_noise = torch.tensor([-2.0, 0.0, 0.5])
    loss = potential_loss(v_bridge, v_noise, margin=1.0, mu=0.1)
    # i=0: relu(1-2) + relu(1-2) + 0.1 (4 + 4)       = 0.8
    # i=1: relu(1-0.5) + relu(1+0) + 0.1 (0.25 + 0)  = 1.525
    # i=2: relu(1+1) + relu(1+0.5) + 0.1 (1 + 0.25)  = 3.625
    torch.testing.assert_close(loss, torch.tensor([0.8, 1.525, 3.625]))
    assert loss.shape == (3,)


def test_potential_loss_margin_and_mu():
    v = torch.tensor([3.0])
    # bridge above m and noise below -m: only the L2 term is left
    torch.testing.assert_close(potential_loss(v, -v, margin=2.0, mu=0.5), torch.tensor([9.0]))
    torch.testing.assert_close(potential_loss(v, -v, margin=4.0, mu=0.0), torch.tensor([2.0]))


def test_weights_have_unit_mean_without_clamp():
    v = torch.randn(32, generator=torch.Generator().manual_seed(0)) * 3
    w = importance_weights(v, lam=0.1, clamp=(1e-6, 1e6))
    assert w.shape == (32,) and w.dtype == torch.float32
    # B·softmax then the mean: two sums of B terms ≥ 0 and a few roundings (helpers.reordered_tol)
    assert float(w.mean()) == pytest.approx(1.0, abs=reordered_tol(torch.float32, terms=2 * len(w) + 4, scale=1.0))
    assert float(w.std()) > 0


def test_weights_equal_b_times_softmax_by_hand():
    v = torch.tensor([0.0, math.log(3.0)])  # sigmoid: 0.5 and 0.75
    w = importance_weights(v, lam=2.0, clamp=(0.01, 100.0))  # s = (1.0, 1.5)
    e = math.exp(0.5)
    torch.testing.assert_close(w, torch.tensor([2 / (1 + e), 2 * e / (1 + e)]))
    v = torch.randn(7, generator=torch.Generator().manual_seed(1))
    w = importance_weights(v, lam=0.7, clamp=(0.01, 100.0))
    torch.testing.assert_close(w, 7 * torch.softmax(0.7 * torch.sigmoid(v), dim=0))


def test_weights_increase_with_v():
    v = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    w = importance_weights(v, lam=1.0, clamp=(0.1, 10.0))
    assert (w.diff() > 0).all()


@pytest.mark.parametrize("clamp", [(0.5, 2.0), (0.1, 10.0)])
def test_weights_respect_the_clamp(clamp):
    v = torch.full((16,), -10.0)
    v[0] = 10.0
    w_raw = 16 * torch.softmax(50.0 * torch.sigmoid(v), dim=0)
    assert w_raw.max() > clamp[1] and w_raw.min() < clamp[0]  # the clamp is active on both ends
    w = importance_weights(v, lam=50.0, clamp=clamp)
    lo, hi = torch.tensor(clamp)  # the bounds in float32
    assert w.min() >= lo and w.max() <= hi
    assert w[0] == hi and (w[1:] == lo).all()


def test_weights_stop_gradient_switch():
    v = torch.randn(4, requires_grad=True)
    assert importance_weights(v, lam=0.5, clamp=(0.1, 10.0)).grad_fn is None
    w = importance_weights(v, lam=0.5, clamp=(0.1, 10.0), detach=False)
    (w * torch.arange(4.0)).sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_drift_loss_is_per_sample_mean_over_pixels():
    target = torch.arange(3.0)[:, None, None, None].expand(3, 2, 4, 4).contiguous()
    f_out = torch.zeros_like(target)
    torch.testing.assert_close(drift_loss(f_out, target), torch.tensor([0.0, 1.0, 4.0]))
    f_out[1, 0] = 3.0  # half the pixels of sample 1 miss by 2, half by 1
    torch.testing.assert_close(drift_loss(f_out, target), torch.tensor([0.0, 2.5, 4.0]))
    half = drift_loss(f_out.half(), target.half())
    assert half.dtype == torch.float32 and half.shape == (3,)


def _weighted_drift_loss(f, V, detach: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 1, 8, 8, generator=gen)
    target = torch.randn(6, 1, 8, 8, generator=gen)
    t = torch.rand(6, generator=gen)
    w = importance_weights(V(x_t), lam=0.5, clamp=(0.1, 10.0), detach=detach)
    return (w * drift_loss(f(x_t, t), target)).mean()


def test_stop_gradient_keeps_drift_loss_gradient_out_of_v(make_unet, make_potential):
    f, V = make_unet(), make_potential()
    _weighted_drift_loss(f, V, detach=True).backward()
    assert all(p.grad is None or not p.grad.any() for p in V.parameters())
    assert any(p.grad is not None and p.grad.any() for p in f.parameters())


def test_without_stop_gradient_drift_loss_reaches_v(make_unet, make_potential):
    f, V = make_unet(), make_potential()
    _weighted_drift_loss(f, V, detach=False).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in V.parameters())
