"""Stage-level reliability: a stage killed mid-write leaves no output behind (atomic outputs); a training
stage never resumes a checkpoint of other code, data or configuration."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_sample_stage_killed_mid_write_leaves_no_output(tmp_path: Path) -> None:
    from agm.model_file import save_model
    from agm.nets import DriftUNet

    unet = dict(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                attn_resolutions=(), time_embed_dim=16, head_channels=8, dropout=0.0, groups=4)
    save_model(tmp_path / "model.pt", ema=DriftUNet(**unet).state_dict(), unet=unet, potential=None,
               potential_kwargs=None, step=0, lam=0.0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # many small batches at a high NFE: the stage is mid-write for several seconds
    params["sample"].update(num_samples=4000, batch_size=20, nfe=400, device="cpu")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "samples"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.sample", "--params", str(tmp_path / "params.yaml"), "--seed", "0",
         "--model", str(tmp_path / "model.pt"), "--out", str(out)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".samples.*.tmp/samples.npy")):
        time.sleep(0.2)  # wait until the stage has started writing into its temporary folder
    assert list(tmp_path.glob(".samples.*.tmp/samples.npy")), "the stage never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing a later stage could trust


# --- a training stage's checkpoint belongs to one run: its config, data and code ----------------------

def _copy_code(dst: Path) -> Path:
    for name in ("agm", "stages"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _train_stage(code: Path, work: Path, steps: int) -> str:
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["train"].update(steps=steps, device="cpu")
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code)}
    if not (work / "train.npz").exists():
        subprocess.run([sys.executable, "-m", "stages.prepare", "--params", str(work / "params.yaml"),
                        "--train", str(work / "train.npz"), "--heldout", str(work / "heldout.npz")],
                       cwd=code, env=env, check=True, capture_output=True)
    res = subprocess.run(
        [sys.executable, "-m", "stages.train", "--params", str(work / "params.yaml"), "--variant", "agm",
         "--seed", "0", "--data", str(work / "train.npz"), "--checkpoints", str(work / "ckpt"),
         "--out", str(work / "run"), "--live", str(work / "live")],
        cwd=code, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout + res.stderr


def _model_bytes(work: Path) -> bytes:
    return (work / "run" / "model.pt").read_bytes()


def _resumed_from(work: Path) -> int:
    return json.loads((work / "live" / "metrics.json").read_text())["resumed_from_step"]


def test_train_stage_retrains_from_step_zero_after_a_code_change(tmp_path: Path) -> None:
    code, work = _copy_code(tmp_path / "code"), tmp_path / "work"
    work.mkdir()
    _train_stage(code, work, steps=4)
    first = _model_bytes(work)
    _train_stage(code, work, steps=4)  # same code, data and config: resumes at the end, the same model
    assert _resumed_from(work) == 4 and _model_bytes(work) == first
    losses = code / "agm" / "losses.py"
    text = losses.read_text()
    edited = text.replace("return (f_out.float() - target.float()).square().flatten(1).mean(1)",
                          "return (f_out.float() - target.float()).abs().flatten(1).mean(1)")
    assert edited != text
    losses.write_text(edited)  # a changed drift loss: the old checkpoint must not be reused
    out = _train_stage(code, work, steps=4)
    assert "belongs to another run (differs in: code)" in out
    assert _resumed_from(work) == 0 and _model_bytes(work) != first


def test_train_stage_with_fewer_steps_does_not_return_the_longer_model(tmp_path: Path) -> None:
    code, work = ROOT, tmp_path
    _train_stage(code, work, steps=6)
    longer = _model_bytes(work)
    out = _train_stage(code, work, steps=3)
    assert "differs in: train.steps" in out
    assert _resumed_from(work) == 0 and _model_bytes(work) != longer
    assert torch.load(work / "run" / "model.pt", weights_only=False)["step"] == 3
