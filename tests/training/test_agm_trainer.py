"""Tests for agm/training/agm_trainer.py: one step in the paper's order (docs/spec.md §4), the baseline, the
ablation, AMP."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import (
    HYPER,
    B,
    accumulation_terms,
    after_adam_tol,
    agm_trainer,
    float32_of_float64_tol,
    inputs,
    params_equal,
    reordered_tol,
    state_equal,
)
from torch import nn

from agm.math.bridge import sample_bridge
from agm.math.losses import drift_loss, importance_weights, potential_loss
from agm.math.nets import count_parameters
from agm.training.checkpoints import load_checkpoint, save_checkpoint
from agm.training.weightings import PotentialWeights

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
# ------------------------------------------------------------------------------------------------
# one step


def test_step_updates_v_first_then_weights_then_f(make_unet, make_potential, float64):
    """Re-implement docs/spec.md §4's step by hand from copies of f and V, and compare.

    The trainer evaluates V on the positives and negatives at once (a batch of 2B), the hand-written step
    on each (B): other kernels, other sums' orders. So the step runs in float64 and the two agree to the
    bounds of tests/helpers.py: the float32 losses and weights (agm.math.losses casts, as here) to
    float32_of_float64_tol, the weights after one AdamW step to after_adam_tol."""
    lam, lr_v = 5.0, 0.05
    f, V = make_unet(), make_potential()
    f0, V0 = copy.deepcopy(f), copy.deepcopy(V)
    trainer = agm_trainer(f, V, lam=lam, **{**HYPER, "lr_v": lr_v})
    x1, x0, eps, t, z = inputs()
    stats = trainer.step(x1, x0, eps, t, z)
    n_v, n_f = accumulation_terms(V0, torch.cat([x1, z])), accumulation_terms(f0, x1, t)

    def close(actual: torch.Tensor, expected: torch.Tensor, float32_terms: int, net_terms: int, **kw) -> None:
        tol = float32_of_float64_tol(float32_terms=float32_terms, scale=float(expected.abs().max()),
                                     net_terms=net_terms, **kw)
        torch.testing.assert_close(actual, expected, rtol=0.0, atol=tol, check_dtype=False)

    bridge = sample_bridge(x0, x1, t, eps, HYPER["sigma_max"])
    # 2. V: one AdamW step on L_V over bridge samples (positives) and fresh noise z (negatives), in float32
    V_ref = copy.deepcopy(V0)
    opt_v = torch.optim.AdamW(V_ref.parameters(), lr=lr_v, betas=HYPER["betas"], weight_decay=0.0)
    loss_v = potential_loss(V_ref(bridge.x_t).float(), V_ref(z).float(), HYPER["margin"], HYPER["mu"]).mean()
    loss_v.backward()
    nn.utils.clip_grad_norm_(V_ref.parameters(), HYPER["grad_clip"])
    opt_v.step()
    close(stats.potential_loss, loss_v.detach(), B, n_v)
    for p, q in zip(trainer.V.parameters(), V_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0.0, atol=after_adam_tol(torch.float64, terms=n_v, lr=lr_v, steps=1))
    # 3. weights from the updated V, not the old one
    with torch.no_grad():
        w_after = importance_weights(V_ref(bridge.x_t), lam, HYPER["clamp"])
        w_before = importance_weights(V0(bridge.x_t), lam, HYPER["clamp"])
    assert (w_after - w_before).abs().max() > 1e-2  # the test can tell the two orders apart
    cond = float(w_after.mean() / w_after.std())  # a standard deviation centres first
    for name, expected, terms, kw in (("w_min", w_after.min(), B, {}), ("w_max", w_after.max(), B, {}),
                                      ("w_mean", w_after.mean(), B, {}),
                                      ("w_std", w_after.std(), 2 * B, {"condition": cond})):
        close(getattr(stats, name), expected, terms, n_v, **kw)
    # 4. f: f ≡ 0 at init, so L_f = mean_i w_i ‖v_t,i‖²
    per_sample = bridge.target.float().square().flatten(1).mean(1)
    close(stats.drift_loss, (w_after * per_sample).mean(), 2 * x1.numel(), n_v)
    assert abs(float(stats.drift_loss) - float((w_before * per_sample).mean())) > 1e-3
    # f's step on the weights the trainer used: its updated V's on the same x_t, recomputed with the same
    # operations on the same bytes in this process (bitwise), since a float32 weight one rounding off would
    # move a near-zero gradient's weight by lr/ε times that (helpers.after_adam_tol)
    with torch.no_grad():
        w_used = importance_weights(trainer.V(bridge.x_t), lam, HYPER["clamp"])
    assert torch.equal(w_used.max(), stats.w_max) and torch.equal(w_used.min(), stats.w_min)
    f_ref = copy.deepcopy(f0)
    opt_f = torch.optim.AdamW(f_ref.parameters(), lr=HYPER["lr_f"], betas=HYPER["betas"],
                              weight_decay=0.0)
    loss_f = (w_used * drift_loss(f_ref(bridge.x_t, t), bridge.target)).mean()
    loss_f.backward()
    nn.utils.clip_grad_norm_(f_ref.parameters(), HYPER["grad_clip"])
    opt_f.step()
    f_tol = after_adam_tol(torch.float64, terms=n_f, lr=HYPER["lr_f"], steps=1)
    for p, q in zip(trainer.f.parameters(), f_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0.0, atol=f_tol)
    # EMA: d θ_0 + (1 − d) θ_1 (a convex combination: no further amplification; its own rounding, 3 terms)
    d = HYPER["ema_decay"]
    for p_ema, p0, p1 in zip(trainer.ema.model.parameters(), f0.parameters(), f_ref.parameters(),
                             strict=True):
        scale = float(p0.detach().abs().max() + p1.detach().abs().max())
        torch.testing.assert_close(p_ema, d * p0 + (1 - d) * p1, rtol=0.0,
                                   atol=f_tol + reordered_tol(torch.float64, terms=3, scale=scale))


def test_baseline_has_no_potential_and_unit_weights(make_unet):
    f = make_unet()
    trainer = agm_trainer(f, None, lam=0.0, **HYPER)
    assert trainer.V is None and trainer.opt_v is None
    x1, x0, eps, t, z = inputs()
    stats = trainer.step(x1, x0, eps, t, z)
    assert float(stats.w_min) == float(stats.w_max) == float(stats.w_mean) == 1.0
    assert float(stats.w_std) == 0.0 and float(stats.potential_loss) == 0.0
    bridge = sample_bridge(x0, x1, t, eps, HYPER["sigma_max"])
    # f ≡ 0 at init, w ≡ 1: the mean of B per-sample means against one mean over all B·H·W squares (≥ 0)
    expected = bridge.target.square().mean()
    tol = reordered_tol(torch.float32, terms=x1.numel() + B, scale=float(expected))
    torch.testing.assert_close(stats.drift_loss, expected, rtol=0.0, atol=tol)
    assert not params_equal(trainer.f, make_unet())  # f moved


def test_potential_weights_need_a_positive_lambda(make_potential):
    with pytest.raises(ValueError, match="lam > 0"):
        PotentialWeights(make_potential(), lam=0.0, clamp=(0.1, 10.0))


def test_without_stop_gradient_drift_loss_also_moves_v(make_unet, make_potential):
    """The collapse ablation (Eq. 12): V's one step is on ∇(L_V + L_f); with the stop-gradient, on ∇L_V."""
    runs = {}
    for detach in (True, False):
        trainer = agm_trainer(make_unet(), make_potential(), lam=2.0, detach=detach, **HYPER)
        stats = trainer.step(*inputs())
        runs[detach] = (trainer, stats)
    (t_sg, s_sg), (t_no, s_no) = runs[True], runs[False]
    assert torch.equal(s_sg.potential_loss, s_no.potential_loss)  # the same L_V on the same V
    assert not params_equal(t_sg.V, t_no.V)


def test_without_stop_gradient_v_takes_one_optimiser_step_and_matches_agm_as_lambda_vanishes(
        make_unet, make_potential, float64):
    """One AdamW step per iteration for V: as λ → 0, L_f's gradient into V vanishes and the ablation's V
    equals the stop-gradient run's (a second step on L_f would double Adam's counter and momentum, and
    move V by ~lr). float64, at λ = 1e-12 (the float32 weights are then exactly 1): V's gradients differ by
    the joint backward's order and by L_f's part, λ times terms of size ≤ B; helpers.after_adam_tol's
    lr/ε per step turns both into the bound."""
    n, lam, runs = 5, 1e-12, {}
    for detach in (True, False):
        trainer = agm_trainer(make_unet(), make_potential(), lam=lam, detach=detach, **HYPER)
        for seed in range(n):
            trainer.step(*inputs(seed))
        runs[detach] = trainer
    sg, no = runs[True], runs[False]
    steps = {int(state["step"]) for trainer in (sg, no) for state in trainer.opt_v.state.values()}
    assert steps == {n}
    x1, _, _, t, z = inputs()
    terms = accumulation_terms(sg.V, torch.cat([x1, z])) + accumulation_terms(sg.f, x1, t)
    tol = after_adam_tol(torch.float64, terms=terms, lr=HYPER["lr_v"], steps=n) + n * HYPER["lr_v"] / 1e-8 * lam * B
    for p_sg, p_no in zip(sg.V.parameters(), no.V.parameters(), strict=True):
        torch.testing.assert_close(p_no, p_sg, rtol=0.0, atol=tol)
    assert tol < 1e-2 * HYPER["lr_v"]  # far below the ~lr a second step would move V by
    assert not params_equal(sg.V, make_potential())  # V did move


@pytest.mark.parametrize("grad_clip", [0.0, 1e-4])
def test_without_stop_gradient_v_gradient_from_drift_loss_is_clipped(make_unet, make_potential, grad_clip):
    """V's one step on ∇(L_V + L_f) clips that gradient at grad_clip, as every step does; 0 leaves it."""
    trainer = agm_trainer(make_unet(), make_potential(), lam=2.0, detach=False, **{**HYPER, "grad_clip": grad_clip})
    trainer.step(*inputs())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.V.parameters()
                                                 if p.grad is not None]))
    if grad_clip:  # the norm, a sum over V's parameters, computed twice in float32
        assert norm <= grad_clip + reordered_tol(torch.float32, terms=count_parameters(trainer.V), scale=grad_clip)
    else:
        assert norm > 1e-3  # an unclipped gradient is far above the clipped one's bound


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_steps_run_on_cpu(make_unet, make_potential, amp, detach):
    if not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch build has no CPU autocast")
    trainer = agm_trainer(make_unet(), make_potential(), lam=0.5, amp=amp, detach=detach, **HYPER)
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    f0 = make_unet()
    for seed in range(2):
        stats = trainer.step(*inputs(seed))
        assert torch.isfinite(stats.drift_loss) and torch.isfinite(stats.potential_loss)
    assert not params_equal(trainer.f, f0)
    assert all(p.dtype == torch.float32 for p in trainer.f.parameters())


def test_state_dict_round_trip_reproduces_the_next_step(tmp_path, make_unet, make_potential):
    trainer = agm_trainer(make_unet(), make_potential(), lam=0.5, **HYPER)
    for seed in range(3):
        trainer.step(*inputs(seed))
    save_checkpoint(tmp_path / "t.pt", {"trainer": trainer.state_dict()})
    other = agm_trainer(make_unet(seed=10), make_potential(seed=11), lam=0.5, **HYPER)
    other.load_state_dict(load_checkpoint(tmp_path / "t.pt")["trainer"])
    a, b = trainer.step(*inputs(3)), other.step(*inputs(3))
    # one process, the same operations on the same bytes: bitwise equal
    assert torch.equal(a.drift_loss, b.drift_loss)
    assert torch.equal(a.potential_loss, b.potential_loss)
    for key in ("f", "ema", "V"):
        assert state_equal(trainer.state_dict()[key], other.state_dict()[key]), key


def test_learning_rate_warms_up_linearly_then_stays_for_both_optimisers(make_unet, make_potential):
    trainer = agm_trainer(make_unet(), make_potential(), lam=0.5, warmup_steps=4, **HYPER)
    seen = []
    for seed in range(6):
        trainer.step(*inputs(seed))
        seen.append((trainer.opt_f.param_groups[0]["lr"], trainer.opt_v.param_groups[0]["lr"]))
    lr_f, lr_v = HYPER["lr_f"], HYPER["lr_v"]
    expected = [(lr_f * min(1, n / 4), lr_v * min(1, n / 4)) for n in range(1, 7)]
    assert seen == pytest.approx(expected) and trainer.steps_done == 6


def test_warm_up_state_survives_a_checkpoint(make_unet, make_potential):
    trainer = agm_trainer(make_unet(), make_potential(), lam=0.5, warmup_steps=10, ema_warmup=True, **HYPER)
    for seed in range(3):
        trainer.step(*inputs(seed))
    other = agm_trainer(make_unet(seed=5), make_potential(seed=6), lam=0.5, warmup_steps=10, ema_warmup=True,
                        **HYPER)
    other.load_state_dict(copy.deepcopy(trainer.state_dict()))
    assert other.steps_done == 3 and other.ema.updates == 3
    a, b = trainer.step(*inputs(7)), other.step(*inputs(7))  # one process, same operations: bitwise
    assert torch.equal(a.drift_loss, b.drift_loss) and params_equal(trainer.ema.model, other.ema.model)
