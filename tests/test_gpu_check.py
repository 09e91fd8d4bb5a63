"""scripts/gpu_check.py: its stage commands come from dvc.yaml, and its summary renders a real GPU run's JSON.

The whole check runs in CI as ``bash scripts/gpu_check.sh --dry-run`` (.ci/run); these are the fast parts.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_RUN = ROOT / "docs" / "results" / "gpu" / "2026-12-04-nvidia-h200" / "gpu_check.json"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_commands_substitute_the_matrix_item(gpu_check):
    cmds = gpu_check.stage_commands(["prepare", "train_agm@7", "sample@baseline-3", "evaluate@agm-12"])
    assert shlex.split(cmds["prepare"])[:3] == ["python", "-m", "stages.prepare"]
    assert "--seed 7" in cmds["train_agm@7"] and "${" not in cmds["train_agm@7"]
    assert "runs/baseline/s3/model.pt" in cmds["sample@baseline-3"]
    assert "samples/agm/s12/samples.npy" in cmds["evaluate@agm-12"]
    with pytest.raises(KeyError):
        gpu_check.stage_commands(["no_such_stage"])


def test_summary_renders_the_committed_gpu_run(gpu_check):
    report = json.loads(GPU_RUN.read_text())
    md = gpu_check.summary_md(report)
    assert md.startswith("# GPU check — NVIDIA H200 — 2026-12-04")
    assert "| agm | True | True | 101.3 | 1263 |" in md  # the compiled AGM row
    assert "**correctness: timeout**" in md  # a section that did not finish is named, not hidden


def test_summary_renders_a_run_cut_after_the_first_section(gpu_check):
    report = {"started": "2026-12-04T00:00:00+00:00", "dry_run": True, "budget_s": 10.0, "elapsed_s": 3.0,
              "commit": "abc", "sections": {"env": {"status": "ok", "seconds": 3.0, "result": {"torch": "x"}},
                                            "train": {"status": "timeout", "seconds": 9.0, "error": "killed"}}}
    md = gpu_check.summary_md(report)
    assert "| train | timeout | 9 |" in md and "**train: timeout** — killed" in md


def test_a_section_at_its_cap_is_out_of_budget_on_a_gpu_and_a_failure_in_a_dry_run(gpu_check):
    sections = {"env": {"status": "ok"}, "extra_seeds": {"status": gpu_check.OUT_OF_BUDGET, "result": {"rows": [1]}},
                "stages": {"status": "skipped"}}
    assert gpu_check.not_ok({"sections": sections}, dry_run=False) == []
    assert gpu_check.not_ok({"sections": sections}, dry_run=True) == ["extra_seeds"]
    broken = {**sections, "train": {"status": "failed"}, "correctness": {"status": "check failed"}}
    assert gpu_check.not_ok({"sections": broken}, dry_run=False) == ["train", "correctness"]

