"""scripts/gpu_check/: its stage commands come from dvc.yaml, and its summary renders a real GPU run's JSON.

The whole check runs in CI as ``bash scripts/gpu_check.sh --dry-run`` (.ci/run); these are the fast parts.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from scripts.gpu_check import common, driver, registry

ROOT = Path(__file__).resolve().parents[1]
GPU_RUN = ROOT / "docs" / "results" / "gpu" / "2026-12-04-nvidia-h200" / "gpu_check.json"


def test_stage_commands_substitute_the_matrix_item():
    cmds = common.stage_commands(["prepare", "train_agm@7", "sample@baseline-3", "evaluate@agm-12"])
    assert shlex.split(cmds["prepare"])[:3] == ["python", "-m", "stages.prepare"]
    assert "--seed 7" in cmds["train_agm@7"] and "${" not in cmds["train_agm@7"]
    assert "runs/baseline/s3/model.pt" in cmds["sample@baseline-3"]
    assert "samples/agm/s12/samples.npy" in cmds["evaluate@agm-12"]
    with pytest.raises(KeyError):
        common.stage_commands(["no_such_stage"])


def test_summary_renders_the_committed_gpu_run():
    report = json.loads(GPU_RUN.read_text())
    md = driver.summary_md(report)
    assert md.startswith("# GPU check — NVIDIA H200 — 2026-12-04")
    assert "| agm | True | True | 101.3 | 1263 |" in md  # the compiled AGM row
    assert "**correctness: timeout**" in md  # a section that did not finish is named, not hidden


def test_summary_renders_a_run_cut_after_the_first_section():
    report = {"started": "2026-12-04T00:00:00+00:00", "dry_run": True, "budget_s": 10.0, "elapsed_s": 3.0,
              "commit": "abc", "sections": {"env": {"status": "ok", "seconds": 3.0, "result": {"torch": "x"}},
                                            "train": {"status": "timeout", "seconds": 9.0, "error": "killed"}}}
    md = driver.summary_md(report)
    assert "| train | timeout | 9 |" in md and "**train: timeout** — killed" in md


def test_a_section_at_its_cap_is_out_of_budget_on_a_gpu_and_a_failure_in_a_dry_run():
    sections = {"env": {"status": "ok"}, "extra_seeds": {"status": driver.OUT_OF_BUDGET, "result": {"rows": [1]}},
                "stages": {"status": "skipped"}}
    assert driver.not_ok({"sections": sections}, dry_run=False) == []
    assert driver.not_ok({"sections": sections}, dry_run=True) == ["extra_seeds"]
    broken = {**sections, "train": {"status": "failed"}, "correctness": {"status": "check failed"}}
    assert driver.not_ok({"sections": broken}, dry_run=False) == ["train", "correctness"]


def test_the_registry_names_every_section_once_with_its_function_and_caps():
    assert [name for name, *_ in registry.SECTIONS] == list(registry.REGISTRY) == list(registry.SECTION_FUNCS)
    for name, cap_gpu, cap_dry in registry.SECTIONS:
        assert callable(registry.SECTION_FUNCS[name]) and cap_gpu > 0 and cap_dry > 0
