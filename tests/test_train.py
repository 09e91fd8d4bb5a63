"""Tests for agm/train.py: the step order (spec §4), baseline, AMP, learning, resume, NaN guard."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from agm.bridge import sample_bridge
from agm.checkpoint import LATEST, load_checkpoint, save_checkpoint
from agm.losses import drift_loss, importance_weights, potential_loss
from agm.train import AGMTrainer, NonFiniteLossError, train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
B = 8
HYPER = dict(sigma_max=0.1, margin=1.0, mu=0.01, clamp=(0.1, 10.0), lr_f=1e-3, lr_v=1e-3,
             betas=(0.9, 0.999), weight_decay=0.0, grad_clip=1.0, ema_decay=0.9)


def _inputs(seed: int = 0, b: int = B):
    gen = torch.Generator().manual_seed(seed)
    shape = (b, 1, 8, 8)
    x1 = torch.rand(shape, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(shape, generator=gen) for _ in range(3))
    t = torch.rand(b, generator=gen)
    return x1, x0, eps, t, z


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _params_equal(m1: nn.Module, m2: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in history]


# ------------------------------------------------------------------------------------------------
# one step


def test_step_updates_v_first_then_weights_then_f(make_unet, make_potential):
    """Re-implement spec §4's step by hand from copies of f and V, and compare."""
    lam, lr_v = 5.0, 0.05
    f, V = make_unet(), make_potential()
    f0, V0 = copy.deepcopy(f), copy.deepcopy(V)
    trainer = AGMTrainer(f, V, lam=lam, **{**HYPER, "lr_v": lr_v})
    x1, x0, eps, t, z = _inputs()
    stats = trainer.step(x1, x0, eps, t, z)

    bs = sample_bridge(x0, x1, t, eps, HYPER["sigma_max"])
    # 2. V: one AdamW step on L_V over bridge samples (positives) and fresh noise z (negatives)
    V_ref = copy.deepcopy(V0)
    opt_v = torch.optim.AdamW(V_ref.parameters(), lr=lr_v, betas=HYPER["betas"], weight_decay=0.0)
    loss_v = potential_loss(V_ref(bs.x_t), V_ref(z), HYPER["margin"], HYPER["mu"]).mean()
    loss_v.backward()
    nn.utils.clip_grad_norm_(V_ref.parameters(), HYPER["grad_clip"])
    opt_v.step()
    torch.testing.assert_close(stats.potential_loss, loss_v.detach())
    for p, q in zip(trainer.V.parameters(), V_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    # 3. weights from the updated V, not the old one
    with torch.no_grad():
        w_after = importance_weights(V_ref(bs.x_t), lam, HYPER["clamp"])
        w_before = importance_weights(V0(bs.x_t), lam, HYPER["clamp"])
    assert (w_after - w_before).abs().max() > 1e-2  # the test can tell the two orders apart
    torch.testing.assert_close(stats.w_min, w_after.min())
    torch.testing.assert_close(stats.w_max, w_after.max())
    torch.testing.assert_close(stats.w_std, w_after.std())
    torch.testing.assert_close(stats.w_mean, w_after.mean())
    # 4. f: f ≡ 0 at init, so L_f = mean_i w_i ‖v_t,i‖²
    per_sample = bs.target.square().flatten(1).mean(1)
    torch.testing.assert_close(stats.drift_loss, (w_after * per_sample).mean())
    assert abs(float(stats.drift_loss) - float((w_before * per_sample).mean())) > 1e-3
    f_ref = copy.deepcopy(f0)
    opt_f = torch.optim.AdamW(f_ref.parameters(), lr=HYPER["lr_f"], betas=HYPER["betas"],
                              weight_decay=0.0)
    loss_f = (w_after * drift_loss(f_ref(bs.x_t, t), bs.target)).mean()
    loss_f.backward()
    nn.utils.clip_grad_norm_(f_ref.parameters(), HYPER["grad_clip"])
    opt_f.step()
    for p, q in zip(trainer.f.parameters(), f_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    # EMA: d θ_0 + (1 − d) θ_1
    d = HYPER["ema_decay"]
    for p_ema, p0, p1 in zip(trainer.ema.model.parameters(), f0.parameters(), f_ref.parameters(),
                             strict=True):
        torch.testing.assert_close(p_ema, d * p0 + (1 - d) * p1)


def test_baseline_has_no_potential_and_unit_weights(make_unet):
    f = make_unet()
    trainer = AGMTrainer(f, None, lam=0.0, **HYPER)
    assert trainer.V is None and trainer.opt_v is None
    x1, x0, eps, t, z = _inputs()
    stats = trainer.step(x1, x0, eps, t, z)
    assert float(stats.w_min) == float(stats.w_max) == float(stats.w_mean) == 1.0
    assert float(stats.w_std) == 0.0 and float(stats.potential_loss) == 0.0
    bs = sample_bridge(x0, x1, t, eps, HYPER["sigma_max"])
    torch.testing.assert_close(stats.drift_loss, bs.target.square().mean())  # f ≡ 0 at init, w ≡ 1
    assert not _params_equal(trainer.f, make_unet())  # f moved


def test_lambda_and_potential_must_agree(make_unet, make_potential):
    with pytest.raises(ValueError, match="baseline"):
        AGMTrainer(make_unet(), make_potential(), lam=0.0, **HYPER)
    with pytest.raises(ValueError, match="lam > 0"):
        AGMTrainer(make_unet(), None, lam=0.1, **HYPER)


def test_without_stop_gradient_drift_loss_also_moves_v(make_unet, make_potential):
    """The collapse ablation (Eq. 12): V's one step is on ∇(L_V + L_f); with the stop-gradient, on ∇L_V."""
    runs = {}
    for detach in (True, False):
        trainer = AGMTrainer(make_unet(), make_potential(), lam=2.0, detach=detach, **HYPER)
        stats = trainer.step(*_inputs())
        runs[detach] = (trainer, stats)
    (t_sg, s_sg), (t_no, s_no) = runs[True], runs[False]
    assert torch.equal(s_sg.potential_loss, s_no.potential_loss)  # the same L_V on the same V
    assert not _params_equal(t_sg.V, t_no.V)


def test_without_stop_gradient_v_takes_one_optimiser_step_and_matches_agm_as_lambda_vanishes(
        make_unet, make_potential):
    """One AdamW step per iteration for V: as λ → 0, L_f's gradient into V vanishes and the ablation's V
    equals the stop-gradient run's (a second step on L_f would double Adam's counter and momentum)."""
    n, runs = 5, {}
    for detach in (True, False):
        trainer = AGMTrainer(make_unet(), make_potential(), lam=1e-7, detach=detach, **HYPER)
        for seed in range(n):
            trainer.step(*_inputs(seed))
        runs[detach] = trainer
    sg, no = runs[True], runs[False]
    steps = {int(state["step"]) for trainer in (sg, no) for state in trainer.opt_v.state.values()}
    assert steps == {n}
    for p_sg, p_no in zip(sg.V.parameters(), no.V.parameters(), strict=True):
        torch.testing.assert_close(p_no, p_sg, rtol=1e-5, atol=1e-6)
    assert not _params_equal(sg.V, make_potential())  # V did move


@pytest.mark.parametrize("grad_clip", [0.0, 1e-4])
def test_without_stop_gradient_v_gradient_from_drift_loss_is_clipped(make_unet, make_potential, grad_clip):
    """V's one step on ∇(L_V + L_f) clips that gradient at grad_clip, as every step does; 0 leaves it."""
    trainer = AGMTrainer(make_unet(), make_potential(), lam=2.0, detach=False, **{**HYPER, "grad_clip": grad_clip})
    trainer.step(*_inputs())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.V.parameters()
                                                 if p.grad is not None]))
    if grad_clip:
        assert norm <= grad_clip * (1 + 1e-4)
    else:
        assert norm > 1e-3  # an unclipped gradient is far above the clipped one's bound


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_steps_run_on_cpu(make_unet, make_potential, amp, detach):
    if not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch build has no CPU autocast")
    trainer = AGMTrainer(make_unet(), make_potential(), lam=0.5, amp=amp, detach=detach, **HYPER)
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    f0 = make_unet()
    for seed in range(2):
        stats = trainer.step(*_inputs(seed))
        assert torch.isfinite(stats.drift_loss) and torch.isfinite(stats.potential_loss)
    assert not _params_equal(trainer.f, f0)
    assert all(p.dtype == torch.float32 for p in trainer.f.parameters())


def test_state_dict_round_trip_reproduces_the_next_step(tmp_path, make_unet, make_potential):
    trainer = AGMTrainer(make_unet(), make_potential(), lam=0.5, **HYPER)
    for seed in range(3):
        trainer.step(*_inputs(seed))
    save_checkpoint(tmp_path / "t.pt", {"trainer": trainer.state_dict()})
    other = AGMTrainer(make_unet(seed=10), make_potential(seed=11), lam=0.5, **HYPER)
    other.load_state_dict(load_checkpoint(tmp_path / "t.pt")["trainer"])
    a, b = trainer.step(*_inputs(3)), other.step(*_inputs(3))
    assert torch.equal(a.drift_loss, b.drift_loss)
    assert torch.equal(a.potential_loss, b.potential_loss)
    for key in ("f", "ema", "V"):
        assert _state_equal(trainer.state_dict()[key], other.state_dict()[key]), key


# ------------------------------------------------------------------------------------------------
# the loop


def _trainer(make_unet, make_potential, lam: float = 0.5, **kw) -> AGMTrainer:
    return AGMTrainer(make_unet(), make_potential() if lam else None, lam=lam, **{**HYPER, **kw})


def _train(trainer, data, ckpt, steps, **kw):
    args = dict(batch_size=B, seed=3, checkpoint_dir=ckpt, config={"run": "tiny"},
                checkpoint_every=3, log_every=2)
    return train(trainer, data, steps=steps, **{**args, **kw})


def test_tiny_unet_learns_the_toy_data(tmp_path, make_unet, toy_data):
    trainer = AGMTrainer(make_unet(), None, lam=0.0, **{**HYPER, "lr_f": 5e-3})
    result = train(trainer, toy_data, steps=240, batch_size=16, seed=0, checkpoint_dir=tmp_path,
                   config={}, checkpoint_every=1000, log_every=10)
    losses = [r["drift_loss"] for r in result.history]
    assert len(losses) == 24 and result.step == 240
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.6 * first, (first, last)


def test_training_is_deterministic(tmp_path, make_unet, make_potential, toy_data):
    results = []
    for run in ("a", "b"):
        trainer = _trainer(make_unet, make_potential)
        result = _train(trainer, toy_data, tmp_path / run, steps=7)
        results.append((trainer.state_dict(), result))
    (sa, ra), (sb, rb) = results
    for key in ("f", "ema", "V"):
        assert _state_equal(sa[key], sb[key]), key
    assert _without_timing(ra.history) == _without_timing(rb.history)
    assert [r["step"] for r in ra.history] == [2, 4, 6, 7]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [LATEST]


def test_resume_in_process_is_bitwise(tmp_path, make_unet, make_potential, toy_data):
    whole = _trainer(make_unet, make_potential)
    _train(whole, toy_data, tmp_path / "whole", steps=9)
    first = _trainer(make_unet, make_potential)
    _train(first, toy_data, tmp_path / "split", steps=5)
    logged: list[int] = []
    # a fresh trainer with other initial weights: everything must come from the checkpoint
    second = AGMTrainer(make_unet(seed=20), make_potential(seed=21), lam=0.5, **HYPER)
    result = _train(second, toy_data, tmp_path / "split", steps=9,
                    on_log=lambda s, r: logged.append(s))
    assert result.resumed_from == 5 and result.step == 9
    assert logged == [2, 4, 5, 6, 8, 9]  # the replayed records first (5: the first run's last step)
    for key in ("f", "ema", "V", "opt_f", "opt_v"):
        a, b = whole.state_dict()[key], second.state_dict()[key]
        if key.startswith("opt"):
            a, b = a["state"], b["state"]
            assert all(_state_equal(a[i], b[i]) for i in a), key
        else:
            assert _state_equal(a, b), key


def test_a_changed_config_trains_from_step_zero_and_drops_the_old_files(
        tmp_path, make_unet, make_potential, toy_data, capsys):
    _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=4, snapshot_every=2)
    assert (tmp_path / "ema_00000004.pt").exists()
    trainer = _trainer(make_unet, make_potential)
    result = _train(trainer, toy_data, tmp_path, steps=3, config={"run": "other", "code": "edited"})
    assert result.resumed_from == 0 and [r["step"] for r in result.history] == [2, 3]
    assert "differs in: code, run" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST]  # the other run's snapshots are gone
    assert load_checkpoint(tmp_path / LATEST)["config"] == {"run": "other", "code": "edited"}
    fresh = _trainer(make_unet, make_potential)
    _train(fresh, toy_data, tmp_path / "fresh", steps=3, config={"run": "other", "code": "edited"})
    for key in ("f", "ema", "V"):
        assert _state_equal(trainer.state_dict()[key], fresh.state_dict()[key]), key


def test_fewer_steps_than_a_finished_checkpoint_never_return_the_longer_model(
        tmp_path, make_unet, make_potential, toy_data):
    _train(_trainer(make_unet, make_potential), toy_data, tmp_path / "run", steps=6)
    short = _trainer(make_unet, make_potential)
    result = _train(short, toy_data, tmp_path / "run", steps=3)
    assert result.step == 3 and result.resumed_from == 0
    assert load_checkpoint(tmp_path / "run" / LATEST)["step"] == 3
    fresh = _trainer(make_unet, make_potential)
    _train(fresh, toy_data, tmp_path / "fresh", steps=3)
    for key in ("f", "ema", "V"):
        assert _state_equal(short.state_dict()[key], fresh.state_dict()[key]), key


def test_snapshots_hold_the_ema(tmp_path, make_unet, make_potential, toy_data):
    trainer = _trainer(make_unet, make_potential)
    _train(trainer, toy_data, tmp_path, steps=6, snapshot_every=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema_00000004.pt", LATEST]
    snap = load_checkpoint(tmp_path / "ema_00000004.pt", {"run": "tiny"})
    assert snap["step"] == 4 and set(snap["ema"]) == set(trainer.ema.model.state_dict())


# ------------------------------------------------------------------------------------------------
# the NaN guard


class NaNAfter(nn.Module):
    """Wraps a network; from its ``bad_call``-th forward on, every output is NaN."""

    def __init__(self, inner: nn.Module, bad_call: int) -> None:
        super().__init__()
        self.inner, self.bad_call, self.calls = inner, bad_call, 0

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(*args)
        return out * float("nan") if self.calls >= self.bad_call else out


def test_nan_drift_loss_stops_training_and_keeps_the_last_good_checkpoint(
        tmp_path, make_unet, make_potential, toy_data):
    trainer = AGMTrainer(NaNAfter(make_unet(), bad_call=5), make_potential(), lam=0.5, **HYPER)
    with pytest.raises(NonFiniteLossError, match=r"non-finite drift_loss at step 5\b"):
        _train(trainer, toy_data, tmp_path, steps=20, checkpoint_every=2, log_every=100)
    state = load_checkpoint(tmp_path / LATEST, {"run": "tiny"})
    assert state["step"] == 4
    for key in ("f", "ema", "V"):
        assert all(torch.isfinite(v).all() for v in state["trainer"][key].values()), key
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST]


def test_nan_potential_loss_is_named(tmp_path, make_unet, make_potential, toy_data):
    V = NaNAfter(make_potential(), bad_call=3)  # V runs twice per step: the bad call is in step 2
    trainer = AGMTrainer(make_unet(), V, lam=0.5, **HYPER)
    with pytest.raises(NonFiniteLossError, match=r"potential_loss at step 2\b"):
        _train(trainer, toy_data, tmp_path, steps=20, checkpoint_every=1)
    assert load_checkpoint(tmp_path / LATEST)["step"] == 1


def test_no_snapshot_is_written_after_a_nan(tmp_path, make_unet, make_potential, toy_data):
    """Snapshot steps are guarded too: a snapshot between checks must not hold NaN weights."""
    trainer = AGMTrainer(NaNAfter(make_unet(), bad_call=5), make_potential(), lam=0.5, **HYPER)
    with pytest.raises(NonFiniteLossError, match=r"step 5\b"):
        _train(trainer, toy_data, tmp_path, steps=20, checkpoint_every=4, log_every=4,
               snapshot_every=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema_00000003.pt", LATEST]
    assert load_checkpoint(tmp_path / LATEST)["step"] == 4


# ------------------------------------------------------------------------------------------------
# a killed run resumes bitwise (subprocesses, SIGKILL)

SCRIPT = """
import sys, time
import torch
torch.set_num_threads(1)
from agm.nets import DriftUNet, Potential
from agm.train import AGMTrainer, train

ckpt, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0)
f = DriftUNet(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
              attn_resolutions=(), time_embed_dim=16, head_channels=8, groups=4)
V = Potential(in_channels=1, widths=(8, 8, 8), pool=1, groups=4)
trainer = AGMTrainer(f, V, lam=0.5, sigma_max=0.1, lr_f=1e-3, lr_v=1e-3, ema_decay=0.9)
data = (torch.arange(32 * 64) * 7919 % 256).to(torch.uint8).reshape(32, 1, 8, 8)


def on_log(step, record):
    print(step, flush=True)
    time.sleep(delay)


train(trainer, data, steps=steps, batch_size=8, seed=3, checkpoint_dir=ckpt, config={"run": "tiny"},
      checkpoint_every=3, log_every=2, on_log=on_log)
print("done", flush=True)
"""


def test_killed_run_resumes_bitwise(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    steps, kill_after = 20, 8

    def start(folder: str, delay: float) -> subprocess.Popen:
        cmd = [sys.executable, str(script), str(tmp_path / folder), str(steps), str(delay)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    whole = start("whole", 0.0)
    victim = start("killed", 0.3)  # sleeps after each log, so the kill lands mid-run
    seen = []
    for line in victim.stdout:
        seen.append(line.strip())
        if line.strip().isdigit() and int(line) >= kill_after:
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, (seen, victim.stderr.read())
    victim.stdout.close()
    victim.stderr.close()
    partial = load_checkpoint(tmp_path / "killed" / LATEST)
    assert 0 < partial["step"] < steps

    resumed = start("killed", 0.0)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert out.split() == [str(s) for s in range(2, steps + 1, 2)] + ["done"]  # replayed + new logs
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err

    a, b = (load_checkpoint(tmp_path / run / LATEST) for run in ("whole", "killed"))
    assert a["step"] == b["step"] == steps
    for key in ("f", "ema", "V"):
        assert _state_equal(a["trainer"][key], b["trainer"][key]), key
    assert torch.equal(a["generator"], b["generator"])
    assert _without_timing(a["history"]) == _without_timing(b["history"])
    assert [r["step"] for r in b["history"]] == list(range(2, steps + 1, 2))
