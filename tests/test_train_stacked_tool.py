"""tools.train_stacked: seeds trained stacked land in the train stage's own state folders, so the stage finishes them
in no steps and writes its usual outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout + out.stderr


def test_the_train_stage_finishes_a_stacked_seed_without_training(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "AGM_STATE_DIR": str(tmp_path / "state")}
    p, train = str(tmp_path / "params.yaml"), str(tmp_path / "train.npz")
    _run("stages.prepare", "--params", p, "--train", train, "--heldout", str(tmp_path / "heldout.npz"), env=env)
    out = _run("tools.train_stacked", "--params", p, "--variant", "agm", "--seeds", "0", "1", "--data", train, env=env)
    assert "2 seeds at step 6" in out
    folders = sorted((tmp_path / "state").glob("agm-s1-*[!k]"))
    assert len(folders) == 1 and sorted(f.name for f in folders[0].glob("*.pt")) == [
        "ema_00000003.pt", "ema_00000006.pt", "latest.pt"]
    latest = torch.load(folders[0] / "latest.pt", weights_only=False)
    _run("stages.train", "--params", p, "--variant", "agm", "--seed", "1", "--data", train,
         "--out", str(tmp_path / "runs" / "s1"), "--live", str(tmp_path / "live" / "s1"), env=env)
    summary = json.loads((tmp_path / "live" / "s1" / "metrics.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from_step"] == 6  # nothing was trained here
    model = torch.load(tmp_path / "runs" / "s1" / "model.pt", weights_only=False)
    assert all(torch.equal(model["ema"][k], latest["trainer"]["ema"][k]) for k in model["ema"])
    assert sorted(p.name for p in (tmp_path / "runs" / "s1" / "snapshots").iterdir()) == [
        "ema_00000003.pt", "ema_00000006.pt"]
    # the replayed history: the stage's dvclive log holds every logged step of the stacked run
    logged = (tmp_path / "live" / "s1" / "plots" / "metrics" / "train" / "drift_loss.tsv").read_text().split("\n")
    assert [line.split("\t")[0] for line in logged[1:] if line] == ["2", "4", "6"]
