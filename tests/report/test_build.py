"""Tests for agm.report.build and agm.report.sections: the whole page from small synthetic stage outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from agm.config.params import load_params, read_yaml
from agm.io.atomic import write_json
from agm.io.provenance import code_digest, path_digest
from agm.math.nets import Potential
from agm.models.files import save_model
from agm.report import sections
from agm.report.build import build_report, params_mapping
from agm.report.outputs import RunOutputs, drawn_figures, load_json, load_optional, read_live_curves
from agm.report.run_figures import FigureInputs, render_figures
from agm.report.saliency import SALIENCY_TIMES, write_saliency
from agm.report.studies import load_studies

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "tiny_params.yaml"
POTENTIAL = dict(in_channels=1, widths=(4, 4, 4), pool=1, groups=2)
DIGESTS = {"code (stages.report)": "c0de" * 16, "runs": "ab" * 32}
"""What the page says it was rendered from (stages/report.py computes them; here any hex digests)."""

STUDIES = "Studies: the learning curve, the λ sweep, the power study and the paper's claims"
FULL_HEADINGS = [
    "Table 2 — hyperparameters", "Fig. 3 — samples", "Fig. 4 — training curves", "Fig. 5 — saliency of the potential",
    "Table 3 — reproduced",
    "Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)",
    "Every model — controls beside Table 3", "Metric vs training steps", "Training cost", "Importance weights",
    "How far the weights are from uniform",
    "AGM's weight as a function of t", "No stop-gradient (paper §4.4)", "No stop-gradient — weights",
    "Time-only weighting against AGM", STUDIES, "Parameters",
]


def _build(**kwargs):
    """build_report with the repository's paper profile and studies file, linked from a report folder one level
    below the root."""
    return build_report(paper_profile=load_params(ROOT / "profiles" / "paper.yaml"),
                        studies=load_studies(ROOT / "docs" / "results" / "verdicts.yaml"), root_from_report="..",
                        **kwargs)


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


COST = {"flops_per_image": {"baseline": 2.0e6, "agm": 2.5e6}}
"""The cost stage's metrics (tests/test_stages.py runs that stage; here any two counts)."""


def _outputs(tmp_path: Path, models: list[str], seeds: list[int], with_potential: bool, *,
             grids: dict | None = None, curves: dict | None = None, steps: dict | None = None,
             agm_model: bool = True) -> RunOutputs:
    """The figure stages' folders drawn from synthetic logs (agm.report.run_figures, agm.report.saliency), and the
    RunOutputs the report stage would read from them; ``grids``, ``curves``, ``steps`` override per model."""
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
    curves = {m: [_curve(m, s) for s in seeds] for m in models} | (curves or {})
    steps = {m: [pd.DataFrame({"step": [200, 400], "fd_digits": [90.0, 60.0] if m == "agm" else [100.0, 80.0],
                               "precision": [0.4, 0.5], "recall": [0.5, 0.6]}) for _ in seeds]
             for m in ("baseline", "agm")} | (steps or {})
    inputs = FigureInputs(models=models, seeds=seeds, dist="fd_digits", real=real,
                          grids={m: rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8) for m in models}
                          | (grids or {}),
                          curves=curves, steps=steps, time_weights=(0.8, 1.0, 1.2) if with_potential else None)
    fig_dir, sal_dir = tmp_path / "figures_run", tmp_path / "figures_saliency"
    fig_dir.mkdir(parents=True, exist_ok=True)
    sal_dir.mkdir(parents=True, exist_ok=True)
    manifest = render_figures(inputs, fig_dir, {m: f"samples/{m}/s{seeds[0]}/grid.npy" for m in models})
    figures = drawn_figures(fig_dir, manifest)
    saliency = {"potential": with_potential, "times": list(SALIENCY_TIMES)}
    if with_potential and agm_model:
        torch.manual_seed(0)
        save_model(tmp_path / "model.pt", ema={}, unet={}, potential=Potential(**POTENTIAL).state_dict(),
                   potential_kwargs=POTENTIAL, step=1)
        write_saliency(tmp_path / "model.pt", real, 0.1, "cosine", 0, sal_dir)
        figures["fig5_saliency"] = sal_dir / "fig5_saliency.png"
    elif with_potential:
        saliency = None  # the saliency stage's output is missing
    return RunOutputs(
        models=models, seeds=seeds, curves=curves,
        metrics={m: [{"fd_digits": 50.0 + i + len(m), "precision": 0.5, "recall": 0.6, "n_samples": 100}
                     for i, _ in enumerate(seeds)] for m in models},
        features_metrics={"feature_space": "digits", "classifier_heldout_accuracy": 0.98,
                          "real_vs_real": {"fd_digits": 27.5, "precision": 0.91, "recall": 0.92}},
        steps=steps, figures=figures, figure_manifest=manifest, saliency=saliency,
        time_bins=manifest.get("weight_by_time", {}).get("bins"), cost=COST,
    )


@pytest.mark.parametrize("path", [ROOT / "params.yaml", TINY, *sorted((ROOT / "profiles").glob("*.yaml"))])
def test_params_mapping_prints_the_params_file(path: Path) -> None:
    def dump(mapping: dict) -> str:
        return yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, default_flow_style=False)

    assert dump(params_mapping(load_params(path))) == dump(read_yaml(path))


def test_full_report(tmp_path: Path, one_thread) -> None:
    models = ["baseline", "agm", "no_detach", "time_only", "action_matching"]
    out = tmp_path / "report"
    files = _build(out_dir=out, params=load_params(TINY),
                         outputs=_outputs(tmp_path, models, [0, 1], with_potential=True),
                         provenance=DIGESTS, profile="smoke")
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
    assert "\n```yaml\nprofile: tiny\nlambda: 0.1\nseed: 0\nseeds:\n- 0\n" in text
    assert "issue" not in text.lower()
    assert files.html.read_text().count("data:image/png;base64,") == 9  # every figure inlined once


def test_minimal_report_leaves_out_what_did_not_run(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=False)
    files = _build(out_dir=tmp_path / "report", params=load_params(TINY), outputs=outputs,
                         provenance=DIGESTS, profile="smoke")
    text = files.markdown.read_text()
    assert re.findall(r"^## (.*)$", text, flags=re.M) == [
        "Table 2 — hyperparameters", "Fig. 3 — samples", "Fig. 4 — training curves", "Table 3 — reproduced",
        "Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)", "Metric vs training steps",
        "Training cost", "Importance weights", "How far the weights are from uniform", STUDIES, "Parameters"]
    assert "one seed 0, so no interval (list more in params `seeds`)" in text
    assert "Paired by seed" not in text


def test_sections_without_their_inputs_are_empty(tmp_path: Path) -> None:
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=False)
    assert sections.saliency_section(outputs) == []
    assert sections.every_model_section(outputs) == []
    assert sections.weight_by_time_section(outputs) == []
    assert sections.no_detach_sections(outputs, 1.0) == []
    assert sections.time_only_section(outputs) == []
    no_steps = dataclasses.replace(outputs, steps={"baseline": [], "agm": []})
    assert sections.metric_vs_steps_section(no_steps, 10) == []


# --- a metric of 0, NaN or a missing seed renders as "n/a (<reason>)", never an exception ------------


def test_a_zero_baseline_metric_renders_na(tmp_path: Path) -> None:
    # one seed, as the paper profile at tiny sizes: the baseline's honest precision of exactly 0
    outputs = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=False)
    metrics = {m: [dict(row) for row in rows] for m, rows in outputs.metrics.items()}
    metrics["baseline"][0]["precision"] = 0.0
    files = _build(out_dir=tmp_path / "report", params=load_params(TINY), provenance=DIGESTS, profile="paper",
                         outputs=dataclasses.replace(outputs, metrics=metrics))
    text = files.markdown.read_text()
    assert "| baseline | 58.00 | 0.000 | 0.600 | 1 |" in text
    assert "| Δ (absolute) | -5.00 | +0.500 | +0.000 |  |" in text
    assert "| Δ (relative, %) | -8.6% | n/a (baseline precision is 0) | +0.0% |  |" in text
    assert "n/a (baseline precision is 0)" in files.html.read_text()


def test_nan_and_missing_seeds_render_na(tmp_path: Path, one_thread) -> None:
    models = ["baseline", "agm", "no_detach", "time_only", "action_matching"]
    outputs = _outputs(tmp_path, models, [0, 1], with_potential=True)
    metrics = {m: [dict(row) for row in rows] for m, rows in outputs.metrics.items()}
    metrics["agm"][1] = None  # seed 1's metrics file is missing
    metrics["time_only"][0]["fd_digits"] = float("nan")
    curves = {m: list(per_seed) for m, per_seed in outputs.curves.items()}
    curves["no_detach"][1] = curves["action_matching"][0] = None  # logs missing, one of them the first seed's
    curves["agm"][1] = curves["agm"][1].assign(w_ess=float("nan"))
    steps = {"baseline": outputs.steps["baseline"], "agm": [outputs.steps["agm"][0], None]}
    drawn = _outputs(tmp_path / "degenerate", models, [0, 1], with_potential=True, grids={"time_only": None},
                     curves=curves, steps=steps)
    degenerate = dataclasses.replace(drawn, metrics=metrics)
    out = tmp_path / "report"
    files = _build(out_dir=out, params=load_params(TINY), outputs=degenerate, provenance=DIGESTS, profile="smoke")
    text = files.markdown.read_text()
    assert re.findall(r"^## (.*)$", text, flags=re.M) == FULL_HEADINGS
    assert len(list((out / "figures").glob("*.png"))) == 8  # no metric-vs-steps figure
    assert "| agm | n/a (seed 1 missing) | n/a (seed 1 missing) | n/a (seed 1 missing) | 2 |" in text
    assert "| Δ (absolute) | n/a (agm: seed 1 missing) |" in text
    assert "| time_only | n/a (seed 0 is NaN) |" in text
    assert "agm − baseline = n/a (seed 1 missing)." in text
    assert "time-only − AGM fd_digits: n/a (seed 1 missing, seed 0 is NaN) over 2 seed(s). No verdict." in text
    assert "seed 1: n/a (no_detach curves missing)." in text
    assert "time_only: n/a (seed 0 sample grid missing)." in text
    assert "action_matching: n/a (seed 0 curves missing)." in text
    cost_row = r"\| action_matching \| n/a \(not counted\) \| n/a \| [0-9.]+ \| [0-9.–]+ \| [0-9.–]+ \| 1 of 2 \|"
    assert re.search(cost_row, text)  # training cost: the one logged run
    assert "agm: effective sample size n/a (seed 1 is NaN) of the batch" in text
    assert "The curves: n/a (agm: seed 1 missing)." in text
    assert not re.search(r"\bnan\b", text)  # every unusable number says why


def test_a_missing_agm_model_or_first_seed_renders_na(tmp_path: Path) -> None:
    gone = _outputs(tmp_path, ["baseline", "agm"], [0], with_potential=True, agm_model=False,
                    grids={"baseline": None, "agm": None}, curves={"baseline": [None], "agm": [None]})
    text = _build(out_dir=tmp_path / "report", params=load_params(TINY), outputs=gone, provenance=DIGESTS,
                  profile="smoke").markdown.read_text()
    assert "n/a (seed 0 saliency figure missing)" in text
    assert "baseline, agm: n/a (seed 0 sample grid missing)." in text
    assert "baseline, agm: n/a (seed 0 curves missing)." in text
    assert re.search(r"\| agm \| [0-9.]+ \| [0-9.]+ \| n/a \| n/a \| n/a \| 0 of 1 \|", text)  # training cost


def test_load_optional_records_what_is_missing(tmp_path: Path) -> None:
    missing: list[str] = []
    (tmp_path / "there.json").write_text('{"precision": NaN}')
    assert load_optional(load_json, tmp_path / "gone.json", missing) is None
    assert load_optional(read_live_curves, tmp_path / "no_live", missing) is None
    assert load_optional(load_json, tmp_path / "there.json", missing)["precision"] != 0.0  # NaN read as NaN
    assert missing == [str(tmp_path / "gone.json"), str(tmp_path / "no_live")]


REPORT_ARGS = {"params": "params.yaml", "paper-profile": str(ROOT / "profiles" / "paper.yaml"),
               "studies": str(ROOT / "docs" / "results" / "verdicts.yaml"),
               "curve": str(ROOT / "docs" / "results" / "converged" / "plateau.json"), "live": "live",
               "metrics": "metrics", "steps": "steps", "figures": "figures/run", "saliency": "figures/saliency",
               "cost": "metrics/cost.json", "out": "reports"}
"""The report stage's arguments, relative to a folder laid out as the pipeline's workspace."""


def _write_stage_inputs(root: Path, *, missing: tuple[str, int] | None = ("agm", 1)) -> None:
    """params.yaml (seeds 0 and 1), training logs, metric-vs-steps CSVs and metrics files under ``root``, the
    metrics of ``missing`` (model, seed) left out."""
    params = read_yaml(TINY) | {"seeds": [0, 1]}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for model in ("baseline", "agm"):
        for seed in (0, 1):
            live = root / "live" / model / f"s{seed}" / "plots" / "metrics" / "train"
            live.mkdir(parents=True)
            curve = _curve(model, seed)
            for column in curve.columns.drop("step"):
                curve[["step", column]].to_csv(live / f"{column}.tsv", sep="\t", index=False)
            (root / "steps" / model).mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"step": [200, 400], "fd_digits": [90.0, 60.0], "precision": [0.4, 0.5],
                          "recall": [0.5, 0.6]}).to_csv(root / "steps" / model / f"s{seed}.csv", index=False)
            if (model, seed) != missing:
                (root / "metrics" / model).mkdir(parents=True, exist_ok=True)
                write_json(root / "metrics" / model / f"s{seed}.json",
                           {"fd_digits": 50.0 + seed, "precision": 0.0, "recall": 0.6, "n_samples": 100})
    write_json(root / "metrics" / "features.json",
               {"feature_space": "digits", "real_vs_real": {"fd_digits": 27.5, "precision": 0.91, "recall": 0.92}})


def test_report_stage_shows_a_missing_seed_as_na(tmp_path: Path, monkeypatch, capsys) -> None:
    """stages/report.py on outputs of seeds 0 and 1 where AGM's seed-1 metrics and the figure stages' folders are
    missing: the page is written, with n/a where they were needed, and the stage says what was missing."""
    from stages import report

    _write_stage_inputs(tmp_path)
    args = REPORT_ARGS
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["report", *(f"--{k}={v}" for k, v in args.items())])
    report.main()
    err = capsys.readouterr().err
    assert err == ("report: missing, shown as n/a: figures/run/figures.json, figures/saliency/fig5_saliency.json, "
                   "metrics/agm/s1.json, metrics/cost.json\n")
    text = (tmp_path / "reports" / "report.md").read_text()
    assert "| agm | n/a (seed 1 missing) | n/a (seed 1 missing) | n/a (seed 1 missing) | 2 |" in text
    assert "| Δ (relative, %) | n/a (agm: seed 1 missing) |" in text
    assert "n/a (seed 0 saliency figure missing)" in text
    assert "- profile: `tiny`" in text and "Reproduced with the **tiny** profile" in text  # params' `profile`
    # what the page was rendered from: content hashes of its code and of every input, no git revision
    code = code_digest("stages.report")[:16]
    assert f"  - code (stages.report): `{code}`\n  - params.yaml: `{path_digest('params.yaml')[:16]}`\n" in text
    for name in ("live", "metrics", "steps"):
        assert f"  - {name}: `{path_digest(tmp_path / name)[:16]}`\n" in text
    assert "  - figures/run: `missing`\n" in text and "git revision" not in text


def test_path_digest_is_the_content_not_the_location(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root / "s0").mkdir(parents=True)
        (tmp_path / root / "s0" / "x.json").write_text("{}")
        (tmp_path / root / ".hidden").write_bytes(b"\0")
    assert path_digest(tmp_path / "a") == path_digest(tmp_path / "b") != path_digest(tmp_path / "a" / "s0")
    assert path_digest(tmp_path / "a" / ".hidden") == hashlib.sha256(b"\0").hexdigest()
    digest = path_digest(tmp_path / "a")
    (tmp_path / "a" / "s0" / "x.json").write_text("{ }")  # one byte
    assert path_digest(tmp_path / "a") != digest
    (tmp_path / "a" / "s0" / "x.json").write_text("{}")
    (tmp_path / "a" / "s0" / "x.json").rename(tmp_path / "a" / "s0" / "y.json")  # a name
    assert path_digest(tmp_path / "a") not in (digest, path_digest(tmp_path / "b"))
    with pytest.raises(FileNotFoundError):
        path_digest(tmp_path / "c")


BLOCK_TORCH = """
import importlib.abc, runpy, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is unimportable here")
sys.meta_path.insert(0, NoTorch())
sys.argv = ["report", *sys.argv[1:]]
runpy.run_module("stages.report", run_name="__main__")
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
"""


def test_the_report_stage_renders_from_files_with_torch_unimportable(tmp_path: Path) -> None:
    """A machine with the committed outputs and no torch rebuilds the page: the report stage reads files only
    (figures drawn by the figure stages, FLOPs counted by the cost stage) and imports nothing of torch."""
    _write_stage_inputs(tmp_path, missing=None)
    outputs = _outputs(tmp_path / "drawn", ["baseline", "agm"], [0, 1], with_potential=True)
    shutil.copytree(tmp_path / "drawn" / "figures_run", tmp_path / "figures" / "run")
    shutil.copytree(tmp_path / "drawn" / "figures_saliency", tmp_path / "figures" / "saliency")
    write_json(tmp_path / "figures" / "saliency" / "fig5_saliency.json", outputs.saliency)
    write_json(tmp_path / "metrics" / "cost.json", COST)
    res = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *(f"--{k}={v}" for k, v in REPORT_ARGS.items())],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    text = (tmp_path / "reports" / "report.md").read_text()
    assert "Fig. 5 — saliency of the potential" in text and "(figures/fig5_saliency.png)" in text
    assert "AGM's step costs 1.250 × the baseline's in FLOPs" in text
    assert len(list((tmp_path / "reports" / "figures").glob("*.png"))) == 7
