"""Tests for agm/training/loop.py: the loop learns, resumes bitwise, never resumes another run, NaN guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import HYPER, B, agm_trainer, state_equal, without_timing
from torch import nn

from agm.config.errors import CheckpointMismatchError
from agm.training.agm_trainer import AGMTrainer
from agm.training.checkpoints import LATEST, load_checkpoint
from agm.training.loop import NonFiniteLossError, train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
# ------------------------------------------------------------------------------------------------
# the loop


def _trainer(make_unet, make_potential, lam: float = 0.5, **kw) -> AGMTrainer:
    return agm_trainer(make_unet(), make_potential() if lam else None, lam=lam, **{**HYPER, **kw})


def _train(trainer, data, ckpt, steps, **kw):
    args = dict(batch_size=B, seed=3, checkpoint_dir=ckpt, config={"run": "tiny"},
                checkpoint_every=3, log_every=2)
    return train(trainer, data, steps=steps, **{**args, **kw})


def test_tiny_unet_learns_the_toy_data(tmp_path, make_unet, toy_data):
    trainer = agm_trainer(make_unet(), None, lam=0.0, **{**HYPER, "lr_f": 5e-3})
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
        assert state_equal(sa[key], sb[key]), key
    assert without_timing(ra.history) == without_timing(rb.history)
    assert [r["step"] for r in ra.history] == [2, 4, 6, 7]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [LATEST]


def test_resume_in_process_is_bitwise(tmp_path, make_unet, make_potential, toy_data):
    whole = _trainer(make_unet, make_potential)
    _train(whole, toy_data, tmp_path / "whole", steps=9)
    first = _trainer(make_unet, make_potential)
    _train(first, toy_data, tmp_path / "split", steps=5)
    logged: list[int] = []
    # a fresh trainer with other initial weights: everything must come from the checkpoint
    second = agm_trainer(make_unet(seed=20), make_potential(seed=21), lam=0.5, **HYPER)
    result = _train(second, toy_data, tmp_path / "split", steps=9,
                    on_log=lambda s, r: logged.append(s))
    assert result.resumed_from == 5 and result.step == 9
    assert logged == [2, 4, 5, 6, 8, 9]  # the replayed records first (5: the first run's last step)
    for key in ("f", "ema", "V", "opt_f", "opt_v"):
        a, b = whole.state_dict()[key], second.state_dict()[key]
        if key.startswith("opt"):
            a, b = a["state"], b["state"]
            assert all(state_equal(a[i], b[i]) for i in a), key
        else:
            assert state_equal(a, b), key


def test_a_folder_of_another_run_is_refused_and_left_as_it_is(tmp_path, make_unet, make_potential, toy_data):
    _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=4, snapshot_every=2)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointMismatchError, match=r"belongs to another run \(differs in: code, run\)"):
        _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=4, config={"run": "other", "code": "x"})
    with pytest.raises(CheckpointMismatchError, match="past the 3 steps"):
        _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=3)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_resume_under_another_cadence_is_bitwise(tmp_path, make_unet, make_potential, toy_data):
    """checkpoint_every and log_every say when the loop writes and reads, not what it computes."""
    whole = _trainer(make_unet, make_potential)
    _train(whole, toy_data, tmp_path / "whole", steps=9, checkpoint_every=3, log_every=2)
    _train(_trainer(make_unet, make_potential), toy_data, tmp_path / "split", steps=5, checkpoint_every=3,
           log_every=2)
    resumed = _trainer(make_unet, make_potential)
    result = _train(resumed, toy_data, tmp_path / "split", steps=9, checkpoint_every=4, log_every=1)
    assert result.resumed_from == 5
    for key in ("f", "ema", "V"):
        assert state_equal(whole.state_dict()[key], resumed.state_dict()[key]), key


def test_snapshots_hold_the_ema(tmp_path, make_unet, make_potential, toy_data):
    trainer = _trainer(make_unet, make_potential)
    _train(trainer, toy_data, tmp_path, steps=6, snapshot_every=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema_00000004.pt", LATEST]
    snap = load_checkpoint(tmp_path / "ema_00000004.pt", {"run": "tiny"})
    assert snap["step"] == 4 and set(snap["ema"]) == set(trainer.ema.model.state_dict())


def test_a_kill_between_the_snapshot_and_the_checkpoint_of_one_step_loses_no_snapshot(
        tmp_path, make_unet, make_potential, toy_data, monkeypatch):
    """At a step that is both a snapshot and a checkpoint step, the process dies after the first of the two
    writes; the resumed run must still end with every snapshot."""
    import agm.training.loop

    save, writes = agm.training.loop.save_checkpoint, []

    def dies_at_the_second_write_of_step_4(path, state):
        writes.append(state["step"])
        if writes.count(4) == 2:
            raise KeyboardInterrupt  # stands for SIGKILL between the two files
        save(path, state)

    monkeypatch.setattr(agm.training.loop, "save_checkpoint", dies_at_the_second_write_of_step_4)
    with pytest.raises(KeyboardInterrupt):
        _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=6, checkpoint_every=2,
               snapshot_every=4)
    monkeypatch.setattr(agm.training.loop, "save_checkpoint", save)
    _train(_trainer(make_unet, make_potential), toy_data, tmp_path, steps=6, checkpoint_every=2, snapshot_every=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ema_00000004.pt", LATEST]
    whole = _trainer(make_unet, make_potential)
    _train(whole, toy_data, tmp_path / "whole", steps=6, checkpoint_every=2, snapshot_every=4)
    a, b = (load_checkpoint(d / "ema_00000004.pt") for d in (tmp_path, tmp_path / "whole"))
    assert state_equal(a["ema"], b["ema"])


# ------------------------------------------------------------------------------------------------
# the NaN guard


class BadFromCall(nn.Module):
    """Wraps a network and counts its forward calls; ``corrupt`` decides what the ``bad_call``-th and later
    outputs become (subclasses)."""

    def __init__(self, inner: nn.Module, bad_call: int) -> None:
        super().__init__()
        self.inner, self.bad_call, self.calls = inner, bad_call, 0

    def corrupt(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(*args)
        return self.corrupt(out) if self.calls >= self.bad_call else out


class NaNAfter(BadFromCall):
    """From its ``bad_call``-th forward on, every output is NaN."""

    def corrupt(self, out: torch.Tensor) -> torch.Tensor:
        return out * float("nan")


def _stops_and_keeps_a_good_checkpoint(trainer, toy_data, tmp_path, match: str, last_good_step: int) -> None:
    """Training raises ``match`` and the checkpoint left is step ``last_good_step``'s, every weight finite."""
    with pytest.raises(NonFiniteLossError, match=match):
        _train(trainer, toy_data, tmp_path, steps=20, checkpoint_every=2, log_every=100)
    state = load_checkpoint(tmp_path / LATEST, {"run": "tiny"})
    assert state["step"] == last_good_step
    for key in ("f", "ema", "V"):
        assert all(torch.isfinite(v).all() for v in state["trainer"][key].values()), key


def test_nan_drift_loss_stops_training_and_keeps_the_last_good_checkpoint(
        tmp_path, make_unet, make_potential, toy_data):
    trainer = agm_trainer(NaNAfter(make_unet(), bad_call=5), make_potential(), lam=0.5, **HYPER)
    _stops_and_keeps_a_good_checkpoint(trainer, toy_data, tmp_path, r"non-finite drift_loss at step 5\b", 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST]


class _InfGradient(torch.autograd.Function):
    """The identity forward; an infinite gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("inf")


class InfGradientAt(BadFromCall):
    """Its ``bad_call``-th forward is unchanged but sends an infinite gradient back; later ones are plain."""

    def corrupt(self, out: torch.Tensor) -> torch.Tensor:
        return _InfGradient.apply(out) if self.calls == self.bad_call else out


def test_an_infinite_gradient_with_a_finite_loss_never_reaches_a_checkpoint(
        tmp_path, make_unet, make_potential, toy_data):
    """Step 4's loss is finite but its gradient is not: clipping and AdamW turn f's weights into NaN in that
    same step, which the step's statistics (computed before the update) cannot show."""
    trainer = agm_trainer(InfGradientAt(make_unet(), bad_call=4), make_potential(), lam=0.5, **HYPER)
    _stops_and_keeps_a_good_checkpoint(trainer, toy_data, tmp_path,
                                       r"non-finite weights or optimiser state after step 4\b", 2)


def test_nan_potential_loss_is_named(tmp_path, make_unet, make_potential, toy_data):
    V = NaNAfter(make_potential(), bad_call=3)  # V runs twice per step: the bad call is in step 2
    trainer = agm_trainer(make_unet(), V, lam=0.5, **HYPER)
    with pytest.raises(NonFiniteLossError, match=r"potential_loss at step 2\b"):
        _train(trainer, toy_data, tmp_path, steps=20, checkpoint_every=1)
    assert load_checkpoint(tmp_path / LATEST)["step"] == 1


def test_no_snapshot_is_written_after_a_nan(tmp_path, make_unet, make_potential, toy_data):
    """Snapshot steps are guarded too: a snapshot between checks must not hold NaN weights."""
    trainer = agm_trainer(NaNAfter(make_unet(), bad_call=5), make_potential(), lam=0.5, **HYPER)
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
from agm.math.nets import DriftUNet, Potential
from agm.training.agm_trainer import AGMTrainer
from agm.training.loop import train
from agm.training.weightings import PotentialWeights

ckpt, steps, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0)
f = DriftUNet(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
              attn_resolutions=(), time_embed_dim=16, head_channels=8, groups=4)
V = Potential(in_channels=1, widths=(8, 8, 8), pool=1, groups=4)
trainer = AGMTrainer(f, V, PotentialWeights(V, lam=0.5, clamp=(0.1, 10.0)), sigma_max=0.1, lr_f=1e-3, lr_v=1e-3,
                     ema_decay=0.9)
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
        assert state_equal(a["trainer"][key], b["trainer"][key]), key
    assert torch.equal(a["generator"], b["generator"])
    assert without_timing(a["history"]) == without_timing(b["history"])
    assert [r["step"] for r in b["history"]] == list(range(2, steps + 1, 2))
