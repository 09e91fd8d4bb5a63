"""Tests for agm/math/ema.py: θ_EMA ← d θ_EMA + (1 − d) θ, buffers copied, decay validated."""

from __future__ import annotations

import pytest
import torch
from helpers import reordered_tol
from torch import nn

from agm.math.ema import EMA


def _net(fill: float | None = None) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    if fill is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(fill)
    return net


def _lerp_tol(a: torch.Tensor, b: torch.Tensor, updates: int) -> float:
    """helpers.reordered_tol for ``updates`` EMA steps from ``a`` towards ``b`` against d·a + (1 − d)·b:
    a lerp a + w·(b − a) rounds 3 times, the formula 3 times (and 1 − 0.9 is not 0.1 in binary, a rounding
    of |b − a|), every value within |a| + |b|: 3 roundings per update on each side."""
    return reordered_tol(a.dtype, terms=3 * updates, scale=float(a.detach().abs().max() + b.detach().abs().max()))


def test_update_is_exact_convex_combination_on_dyadic_values():
    model = _net(fill=1.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    ema.update(model)
    for p in ema.model.parameters():
        assert torch.equal(p, torch.full_like(p, 0.75 * 1.0 + 0.25 * 3.0))  # 1.5, exact in binary


def test_update_matches_formula_on_random_weights():
    model = _net()
    old = {k: v.clone() for k, v in model.state_dict().items()}
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    new = {k: v.clone() for k, v in model.named_parameters()}
    ema.update(model)
    for name, p in ema.model.named_parameters():
        expected = 0.9 * old[name] + 0.1 * new[name]
        torch.testing.assert_close(p, expected, rtol=0, atol=_lerp_tol(old[name], new[name], 1))
    ema.update(model)  # a second step towards the same weights
    for name, p in ema.model.named_parameters():
        expected = 0.9 * (0.9 * old[name] + 0.1 * new[name]) + 0.1 * new[name]
        torch.testing.assert_close(p, expected, rtol=0, atol=_lerp_tol(old[name], new[name], 2))


def test_buffers_are_copied_not_averaged():
    model = _net()
    ema = EMA(model, decay=0.9)
    model.train()
    model(torch.randn(8, 3, dtype=torch.float64) * 5 + 2)  # moves BatchNorm's running statistics
    ema.update(model)
    for (name, b_ema), b in zip(ema.model.named_buffers(), model.buffers(), strict=True):
        assert torch.equal(b_ema, b), name


def test_ema_is_a_frozen_copy():
    model = _net()
    ema = EMA(model, decay=0.5)
    assert ema.model is not model and not ema.model.training
    assert not any(p.requires_grad for p in ema.model.parameters())
    before = [p.clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, ema.model.parameters(), strict=True))
    x = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(ema(x), ema.model(x))


def test_decay_zero_copies_the_model():
    model = _net()
    ema = EMA(model, decay=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-2.0)
    ema.update(model)
    for p_ema, p in zip(ema.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(p_ema, p)


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_decay_out_of_range_is_an_error(decay):
    with pytest.raises(ValueError, match="EMA decay"):
        EMA(_net(), decay=decay)


def test_warmup_decay_follows_min_of_decay_and_power_schedule():
    from agm.math.ema import ema_decay_at

    assert [ema_decay_at(n, 0.999, True) for n in (0, 1, 10)] == [0.1, 2 / 11, 11 / 20]
    assert ema_decay_at(10**6, 0.999, True) == 0.999 and ema_decay_at(0, 0.999, False) == 0.999


def test_warmup_ema_forgets_the_initial_weights():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.995, warmup=True)
    init = [p.clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for _ in range(200):
        ema.update(model)
    # the weight left on the initial parameters: prod_n d_n = 9! * ... → 9 / 209 · … ≪ 0.995^200 = 0.37
    share = 1.0
    for n in range(200):
        share *= min(0.995, (1 + n) / (10 + n))
    for p_ema, p0, p in zip(ema.model.parameters(), init, model.parameters(), strict=True):
        torch.testing.assert_close(p_ema, share * p0 + (1 - share) * p, rtol=0, atol=_lerp_tol(p0, p, 200))
    assert share < 0.01 and ema.updates == 200
