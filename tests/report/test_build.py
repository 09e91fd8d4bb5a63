"""Tests for agm.report.build and agm.report.sections: the whole page from small synthetic stage outputs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from agm.config import load_params, read_yaml
from agm.model_file import save_model
from agm.nets import Potential
from agm.report import sections
from agm.report.build import build_report, params_mapping
from agm.report.sections import RunOutputs
from agm.time_weighting import TimeWeightTable

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "tiny_params.yaml"
POTENTIAL = dict(in_channels=1, widths=(4, 4, 4), pool=1, groups=2)

FULL_HEADINGS = [
    "Fig. 3 — samples", "Fig. 4 — training curves", "Fig. 5 — saliency of the potential", "Table 3 — reproduced",
    "Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)",
    "Every model — controls beside Table 3", "Metric vs training steps", "Training cost", "Importance weights",
    "How far the weights are from uniform",
    "AGM's weight as a function of t", "No stop-gradient (paper §4.4)", "No stop-gradient — weights",
    "Time-only weighting against AGM", "Parameters",
]


def _curve(model: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    step = np.arange(20, 420, 20)
    df = pd.DataFrame({"step": step})
    if model == "action_matching":
        df["action_loss"] = rng.random(len(step)) - 1.0
    else:
        df["drift_loss"] = np.exp(-step / 200) + 0.1 + 0.01 * rng.random(len(step))
    if model in ("agm", "no_detach"):
        df["potential_loss"] = 0.5 + 0.1 * rng.random(len(step))
    if model in ("agm", "no_detach", "time_only"):
        df["w_min"], df["w_mean"], df["w_max"] = 0.5, 1.0 + 0.01 * rng.random(len(step)), 2.0
        df["w_t_corr"] = 0.1 * rng.standard_normal(len(step))
        df["w_ratio"], df["w_ess"], df["w_clamped"] = 4.0, 0.9, 0.0
    df["step_time_s"] = 0.3 + 0.05 * rng.random(len(step))
    return df


def _outputs(tmp_path: Path, models: list[str], seeds: list[int], with_potential: bool) -> RunOutputs:
    rng = np.random.default_rng(0)
    agm_model, table = None, None
    if with_potential:
        torch.manual_seed(0)
        agm_model = tmp_path / "model.pt"
        save_model(agm_model, ema={}, unet={}, potential=Potential(**POTENTIAL).state_dict(),
                   potential_kwargs=POTENTIAL, step=1, lam=0.1)
        table = TimeWeightTable((0.8, 1.0, 1.2), (5.0, 5.0, 5.0))
    return RunOutputs(
        models=models, seeds=seeds,
        real=rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8),
        grids={m: rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8) for m in models},
        curves={m: [_curve(m, s) for s in seeds] for m in models},
        metrics={m: [{"fd_digits": 50.0 + i + len(m), "precision": 0.5, "recall": 0.6, "n_samples": 100}
                     for i, _ in enumerate(seeds)] for m in models},
        features_metrics={"feature_space": "digits", "classifier_heldout_accuracy": 0.98,
                          "real_vs_real": {"fd_digits": 27.5, "precision": 0.91, "recall": 0.92}},
        steps={m: [pd.DataFrame({"step": [200, 400], "fd_digits": [90.0, 60.0] if m == "agm" else [100.0, 80.0],
                                 "precision": [0.4, 0.5], "recall": [0.5, 0.6]}) for _ in seeds]
               for m in ("baseline", "agm")},
        agm_model=agm_model, time_table=table,
    )


@pytest.mark.parametrize("path", [ROOT / "params.yaml", TINY, *sorted((ROOT / "profiles").glob("*.yaml"))])
def test_params_mapping_prints_the_params_file(path: Path) -> None:
    def dump(mapping: dict) -> str:
        return yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, default_flow_style=False)

    assert dump(params_mapping(load_params(path))) == dump(read_yaml(path))


def test_full_report(tmp_path: Path, one_thread) -> None:
    models = ["baseline", "agm", "no_detach", "time_only", "action_matching"]
    out = tmp_path / "report"
    files = build_report(out_dir=out, params=load_params(TINY),
                         outputs=_outputs(tmp_path, models, [0, 1], with_potential=True),
                         git_rev="abc", profile="smoke")
    text = files.markdown.read_text()
    assert re.findall(r"^## (.*)$", text, flags=re.M) == FULL_HEADINGS
    for image in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (out / image).is_file()
    assert len(list((out / "figures").glob("*.png"))) == 9
    assert "at most e^λ = 1.105 times the smallest (λ = 0.1)" in text
    assert "agm: effective sample size 0.900 ± 0.000 of the batch, max/min 4.000 ± 0.000" in text
    assert "Uncurated samples at NFE 3 with a fixed seed (training seed 0)" in text
    assert "mean ± 95% Student-t interval over seeds 0, 1" in text
    assert "The EMA snapshots evaluated with 80 samples each (mean ± 95% interval over seeds 0, 1)" in text
    assert "AGM first reaches the baseline's final fd_digits (80.000) at step 400 of 400 (100% of the steps)." in text
    assert "seed 0: " in text and "seed 1: " in text  # a collapse verdict per seed
    assert "time-only − AGM fd_digits: " in text
    assert "Paired by seed (2 seeds), fd_digits: " in text
    assert "\n```yaml\nlambda: 0.1\nseed: 0\nseeds:\n- 0\n" in text
    assert "issue" not in text.lower()
    assert files.html.read_text().count("data:image/png;base64,") == 9  # every figure inlined once


def test_minimal_report_leaves_out_what_did_not_run(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=False)
    files = build_report(out_dir=tmp_path / "report", params=load_params(TINY), outputs=outputs,
                         git_rev="abc", profile="smoke")
    text = files.markdown.read_text()
    assert re.findall(r"^## (.*)$", text, flags=re.M) == [
        "Fig. 3 — samples", "Fig. 4 — training curves", "Table 3 — reproduced",
        "Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)", "Metric vs training steps",
        "Training cost", "Importance weights", "How far the weights are from uniform", "Parameters"]
    assert "one seed 0, so no interval (list more in params `seeds`)" in text
    assert "Paired by seed" not in text


def test_sections_without_their_inputs_are_empty(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=False)
    fig_dir = tmp_path / "figures"
    assert sections.saliency_section(outputs, fig_dir, 0.1, "cosine", 0) == []
    assert sections.every_model_section(outputs) == []
    assert sections.weight_by_time_section(outputs, fig_dir) == []
    assert sections.no_detach_sections(outputs, fig_dir, 1.0) == []
    assert sections.time_only_section(outputs) == []
    no_steps = dataclasses.replace(outputs, steps={"baseline": [], "agm": []})
    assert sections.metric_vs_steps_section(no_steps, fig_dir, 10) == []
    assert not fig_dir.exists()


def test_saliency_panels_shapes(tmp_path: Path, one_thread) -> None:
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=True)
    x_t, saliency = sections.saliency_panels(outputs.agm_model, outputs.real, 0.1, "cosine", seed=0, n=3)
    assert sorted(x_t) == sorted(saliency) == list(sections.SALIENCY_TIMES)
    for t in sections.SALIENCY_TIMES:
        assert x_t[t].shape == (3, 1, 8, 8) and saliency[t].shape == (3, 8, 8)
        assert (saliency[t] >= 0).all()
