"""tools.converged_study: each finished (arm, seed) lands as a row and a steps curve at once, the baseline trains
once for every λ, and a second invocation does only what is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tools.converged_study import parse_seeds, study_overrides

ROOT = Path(__file__).resolve().parents[1]
TINY = ["sample.num_samples=48", "sample.batch_size=48", "sample.nfe=2", "sample.grid_nfe=2", "sample.grid_size=4",
        "eval.feature_net_epochs=1", "eval.snapshot_samples=24", "train.batch_size=16", "execution.log_every=2",
        "execution.checkpoint_every=2", "model.base_channels=8", "potential.widths=[8,8,8]"]


def _study(tmp: Path, arms: list[str]) -> str:
    cmd = [sys.executable, "-m", "tools.converged_study", "run", "--work", str(tmp / "work"), "--out",
           str(tmp / "out"), "--state", str(tmp / "state"), "--seeds", "3", "--steps", "4", "--jobs", "2",
           "--device-name", "cpu:test", "--arms", *arms, "--set", *TINY]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def test_rows_land_per_run_and_a_rerun_does_only_what_is_missing(tmp_path: Path) -> None:
    out = _study(tmp_path, ["baseline", "agm@1.0"])
    assert "2 runs to do" in out
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert sorted(zip(runs.model, runs["lambda"], runs.seed)) == [("agm", 1.0, 3), ("baseline", 0.0, 3)]
    assert set(runs.train_steps) == {4} and set(runs.device) == {"cpu:test"}
    assert {"fd_digits", "kd_digits", "precision", "recall", "n_samples"} <= set(runs.columns)
    assert set(runs.n_samples) == {48}
    for arm in ("baseline", "agm_lambda_1.0"):  # every snapshot (10% of 4 steps: each step) at 24 samples
        steps = pd.read_csv(tmp_path / "out" / "steps" / arm / "s3.csv")
        assert list(steps.step) == [1, 2, 3, 4]
    # the baseline is done for every λ: a new arm at another λ trains only itself
    again = _study(tmp_path, ["baseline", "agm@1.0", "shuffled@1.0"])
    assert "1 runs to do" in again and "train_baseline" not in again
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 3 and ("shuffled", 1.0, 3) in set(zip(runs.model, runs["lambda"], runs.seed))
    assert not (tmp_path / "out" / "steps" / "shuffled_lambda_1.0").exists()  # a control has no steps stage
    res = subprocess.run([sys.executable, "-m", "tools.converged_study", "summarize", "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert {("agm", "baseline"), ("shuffled", "baseline"), ("shuffled", "agm@1")} <= set(
        zip(summary.model, summary.reference))
    assert "| shuffled λ=1 | agm@1 | fd_digits | 1 |" in (tmp_path / "out" / "tables.md").read_text()
    assert (tmp_path / "out" / "lambda.png").stat().st_size > 0


def test_seeds_and_overrides():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("5,7-8") == [5, 7, 8] and parse_seeds("2") == [2]
    o = study_overrides(4000)
    assert o["train.steps"] == 4000 and o["train.snapshot_every"] == 400 and o["eval.snapshot_samples"] == 5000
