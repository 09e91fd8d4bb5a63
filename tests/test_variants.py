"""Tests for agm/variants.py: the table agrees with dvc.yaml and config, every row builds and steps, λ = 0 is
decided by the row, and a new variant is one weighting class and one row."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from agm.config.errors import ParamsError
from agm.config.params import CONTROLS, ExecutionParams, TrainParams, load_params
from agm.math.time_bins import TimeWeightTable
from agm.training.weightings import NoStopGradientWeights, PotentialWeights, UnitWeights, WeightingInputs
from agm.variants import VARIANTS, WEIGHT_STATS, DriftVariant, build_run, run_identity

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


def _tiny(lam: float | None = None):
    params = load_params(ROOT / "tests" / "tiny_params.yaml", ["lambda", "bridge", "model", "potential", "train"])
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, amp="none"))
    return params if lam is None else dataclasses.replace(params, lam=lam)


def _step(run):
    gen = torch.Generator().manual_seed(0)
    x1 = torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(4, 1, 16, 16, generator=gen) for _ in range(3))
    return run.trainer.step(x1, x0, eps, torch.rand(4, generator=gen), z)


def test_agm_at_lambda_zero_is_unit_weights_without_v_as_its_row_says():
    params = _tiny(0.0)
    row = VARIANTS["agm"]
    assert row.weighting_at(params) is UnitWeights and row.weighting_at(_tiny()) is PotentialWeights
    assert "lambda = 0" in row.note(params) and row.note(_tiny()) is None
    run = build_run(params, "agm", 0, 1, 16, torch.device("cpu"))
    assert run.trainer.V is None and isinstance(run.trainer.weighting, UnitWeights)
    assert "lambda" not in run.config and "potential" not in run.config and run.config["variant"] == "agm"
    # the same network as the baseline of that seed: the weighting is the only difference, and at λ = 0 none
    base = build_run(params, "baseline", 0, 1, 16, torch.device("cpu"))
    assert all(torch.equal(p, q) for p, q in zip(run.trainer.f.parameters(), base.trainer.f.parameters(), strict=True))
    stats = _step(run)
    assert float(stats.w_min) == 1.0 and float(stats.w_max) == 1.0  # w ≡ 1 exactly, the baseline's weighting


@pytest.mark.parametrize("variant", ["no_detach", "shuffled"])
def test_a_control_with_v_refuses_lambda_zero(variant):
    with pytest.raises(ParamsError, match=f"the {variant} control needs lambda > 0"):
        run_identity(_tiny(0.0), variant, 0, 1, 16, "cpu")


def test_only_no_detach_is_single_process():
    assert [name for name, row in VARIANTS.items() if row.single_process] == ["no_detach"]
    assert VARIANTS["no_detach"].weighting is NoStopGradientWeights
    run = build_run(_tiny(), "no_detach", 0, 1, 16, torch.device("cpu"))
    assert run.trainer.weighting.differentiable and not run.trainer.weighting.detach


class ReversedWeights(PotentialWeights):
    """A hypothetical control: AGM's weights for the negated potential (the most bridge-like sample weighs least)."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = super().__call__(x_t, t)
        return w.max() + w.min() - w

    @classmethod
    def for_run(cls, inputs: WeightingInputs) -> ReversedWeights:
        return cls(inputs.V, lam=inputs.lam, clamp=inputs.clamp, amp_dtype=inputs.amp_dtype)


def test_a_new_variant_is_one_weighting_class_and_one_row(monkeypatch):
    row = DriftVariant(name="reversed", weighting=ReversedWeights, sections=VARIANTS["agm"].sections,
                       logged=("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"))
    monkeypatch.setitem(VARIANTS, "reversed", row)
    params = _tiny()
    run = build_run(params, "reversed", 0, 1, 16, torch.device("cpu"))
    assert isinstance(run.trainer.weighting, ReversedWeights) and run.trainer.V is not None
    assert run.config == run_identity(params, "reversed", 0, 1, 16, "cpu")
    assert run.config["variant"] == "reversed" and run.config["lambda"] == params.lam
    stats = _step(run)
    assert set(row.logged) - {"step_time_s"} <= set(vars(stats))
    with pytest.raises(ParamsError, match="the reversed control needs lambda > 0"):
        run_identity(_tiny(0.0), "reversed", 0, 1, 16, "cpu")
