"""Stage-level reliability: a stage killed mid-write leaves no output behind (atomic outputs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_sample_stage_killed_mid_write_leaves_no_output(tmp_path: Path) -> None:
    from agm.checkpoint import save_model
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
