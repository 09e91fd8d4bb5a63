"""Tests for agm/variants.py: the table agrees with dvc.yaml and config, and every row builds and steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from agm.config import CONTROLS, ExecutionParams, TrainParams, load_params
from agm.time_weighting import TimeWeightTable
from agm.variants import VARIANTS, build_run, run_identity

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_controls_are_the_rows_after_baseline_and_agm():
    assert list(VARIANTS)[:2] == ["baseline", "agm"] and tuple(VARIANTS)[2:] == CONTROLS


@pytest.mark.parametrize("variant", ["baseline", "agm"])
def test_main_stage_params_are_exactly_what_the_variant_reads(variant):
    assert tuple(STAGES[f"train_{variant}"]["params"]) == VARIANTS[variant].sections


@pytest.mark.parametrize("variant", CONTROLS)
def test_the_controls_stage_declares_every_section_a_control_reads(variant):
    # one DVC matrix stage trains every control, so its params are the union of the controls' sections
    assert set(VARIANTS[variant].sections) <= set(STAGES["train_control"]["params"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_builds_steps_and_logs_what_it_measures(variant):
    params = load_params(ROOT / "tests" / "tiny_params.yaml",
                         ["lambda", "bridge", "model", "potential", "train"])
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, amp="none"))
    table = TimeWeightTable(weights=(0.5, 1.5), counts=(10.0, 10.0)) if VARIANTS[variant].needs_time_table \
        else None
    run = build_run(params, variant, 0, 1, 16, torch.device("cpu"), table)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(4, 1, 16, 16, generator=gen) for _ in range(3))
    stats = run.trainer.step(x1, x0, eps, torch.rand(4, generator=gen), z)
    logged = [k for k in VARIANTS[variant].logged if k != "step_time_s"]
    assert set(logged) <= set(vars(stats)) and logged[0] == next(iter(vars(stats)))
    assert (run.trainer.V is not None) == (variant in ("agm", "no_detach", "shuffled"))
    assert run.config["variant"] == variant and run.config["train"]["steps"] == params.train.steps


def test_the_same_seed_builds_the_same_networks():
    params = load_params(ROOT / "tests" / "tiny_params.yaml", VARIANTS["agm"].sections)
    a, b = (build_run(params, "agm", 3, 1, 16, torch.device("cpu")) for _ in range(2))
    for m, n in ((a.trainer.f, b.trainer.f), (a.trainer.V, b.trainer.V)):
        assert all(torch.equal(p, q) for p, q in zip(m.parameters(), n.parameters(), strict=True))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_identity_is_the_built_config_and_holds_what_changes_the_result_only(variant):
    params = load_params(ROOT / "tests" / "tiny_params.yaml", VARIANTS[variant].sections)
    table = TimeWeightTable(weights=(0.5, 1.5), counts=(10.0, 10.0)) if VARIANTS[variant].needs_time_table \
        else None
    identity = run_identity(params, variant, 0, 1, 16, "cpu", table)
    assert identity == build_run(params, variant, 0, 1, 16, torch.device("cpu"), table).config
    assert set(identity["train"]) == {f.name for f in dataclasses.fields(TrainParams)}
    assert identity["device"] == "cpu" and identity["variant"] == variant
    execution = {f.name for f in dataclasses.fields(ExecutionParams)} - {"device"}
    assert not execution & set(_keys(identity)), "an execution key in the identity"


def _keys(tree: dict) -> list[str]:
    return [k for key, value in tree.items() for k in ([key] + (_keys(value) if isinstance(value, dict) else []))]
