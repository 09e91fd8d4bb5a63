"""Tests for agm/report/sweep.py on records shaped like `dvc exp show --json` (DVC 3)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from agm.report.sweep import plot_sweep, summarize, sweep_rows

T_975_DF1 = 12.706204736174707  # t_{0.975, 1}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (model, seed) -> (fd_digits, precision, recall); the baseline never reads λ, so it is the same at every λ
BASELINE = {("baseline", 0): (20.0, 0.60, 0.80), ("baseline", 1): (22.0, 0.62, 0.84)}
AGM = {0.1: {("agm", 0): (18.0, 0.65, 0.83), ("agm", 1): (21.0, 0.63, 0.86)},
       30.0: {("agm", 0): (25.0, 0.50, 0.70), ("agm", 1): (30.0, 0.48, 0.74)}}
SHUFFLED = {0.1: {("shuffled", 0): (20.5, 0.59, 0.81), ("shuffled", 1): (22.5, 0.61, 0.83)},
            30.0: {("shuffled", 0): (26.0, 0.55, 0.75), ("shuffled", 1): (29.0, 0.52, 0.72)}}
WEIGHTS = {"agm": (3.0, 0.9), "shuffled": (2.0, 0.95)}  # model -> (w_ratio, w_ess) at λ = 0.1; × λ/0.1 in w_ratio


def _live(model: str, lam: float) -> dict:
    """A dvclive summary: nested under "train", the last logged values; no weights for the baseline."""
    train = {"drift_loss": 0.5, "step_time_s": 0.01}
    if model in WEIGHTS:
        ratio, ess = WEIGHTS[model]
        train |= {"w_ratio": ratio * lam / 0.1, "w_ess": ess, "w_min": 0.1}
    return {"train": train, "step": 599}


def _rev(rev: str, lam: float, runs: dict, experiments: list | None = None, name: str | None = None,
         space: str = "digits") -> dict:
    dist = {"digits": "fd_digits", "inception": "fid"}[space]
    metrics: dict = {}
    for (model, seed), (fd, p, r) in runs.items():
        metrics[f"metrics/{model}/s{seed}.json"] = {"data": {dist: fd, "precision": p, "recall": r,
                                                             "feature_space": space}}
        metrics[f"live/{model}/s{seed}/metrics.json"] = {"data": _live(model, lam)}
    metrics["metrics/report.json"] = {"data": {"fd_digits": 1.0}}  # not a per-seed metrics file: ignored
    return {"rev": rev, "name": name, "error": None, "experiments": experiments,
            "data": {"params": {"params.yaml": {"data": {"lambda": lam, "seeds": [0, 1]}}}, "metrics": metrics}}


def _exp(rev: str, name: str, lam: float, runs: dict) -> dict:
    return {"revs": [_rev(rev, lam, runs, name=name)], "name": name, "executor": None}


def _show() -> list[dict]:
    """Workspace = the λ = 30 + shuffled experiment; commit at λ = 0.1 (AGM, baseline) and four experiments,
    two of which repeat the commit's and the workspace's numbers."""
    at30 = BASELINE | AGM[30.0] | SHUFFLED[30.0]
    experiments = [_exp("e1", "exp-a", 0.1, BASELINE | AGM[0.1]),
                   _exp("e2", "exp-b", 30.0, BASELINE | AGM[30.0]),
                   _exp("e3", "exp-c", 0.1, BASELINE | AGM[0.1] | SHUFFLED[0.1]),
                   _exp("e4", "exp-d", 30.0, at30)]
    return [_rev("workspace", 30.0, at30), _rev("abc", 0.1, BASELINE | AGM[0.1], experiments)]


def test_rows_one_per_model_lambda_seed_deduplicated():
    rows = sweep_rows(_show())
    assert list(rows.columns) == ["model", "lambda", "seed", "fd_digits", "precision", "recall", "w_ratio", "ess",
                                  "rev", "name"]
    assert len(rows) == 12  # 3 models × 2 λ × 2 seeds, though each appears 2-4 times in the records
    assert not rows.duplicated(subset=["model", "lambda", "seed"]).any()
    assert rows["model"].tolist() == ["baseline"] * 4 + ["agm"] * 4 + ["shuffled"] * 4
    # the baseline appears under every λ, with the same numbers
    base = rows[rows["model"] == "baseline"]
    assert base[["lambda", "seed", "fd_digits"]].values.tolist() == [[0.1, 0, 20.0], [0.1, 1, 22.0],
                                                                     [30.0, 0, 20.0], [30.0, 1, 22.0]]
    # first occurrence kept: the workspace for λ = 30, the commit for AGM at λ = 0.1, exp-c for shuffled at 0.1
    agm01 = rows[(rows["model"] == "agm") & (rows["lambda"] == 0.1)]
    assert set(agm01["rev"]) == {"abc"} and set(agm01["name"]) == {""}
    assert set(rows[(rows["model"] == "shuffled") & (rows["lambda"] == 0.1)]["name"]) == {"exp-c"}
    assert set(rows[rows["lambda"] == 30.0]["rev"]) == {"workspace"}


def test_weight_diagnostics_come_from_the_live_summaries():
    rows = sweep_rows(_show()).set_index(["model", "lambda", "seed"])
    assert rows.loc[("agm", 0.1, 0), "w_ratio"] == pytest.approx(3.0)
    assert rows.loc[("agm", 30.0, 1), "w_ratio"] == pytest.approx(900.0)
    assert rows.loc[("shuffled", 30.0, 0), "ess"] == pytest.approx(0.95)
    base = rows.xs("baseline", level="model")
    assert len(base) == 4 and base["w_ratio"].isna().all() and base["ess"].isna().all()


def test_missing_live_summary_is_nan_and_inception_names_fid():
    show = [_rev("workspace", 0.1, {("agm", 0): (18.0, 0.6, 0.8)}, space="inception")]
    del show[0]["data"]["metrics"]["live/agm/s0/metrics.json"]
    rows = sweep_rows(show)
    assert list(rows.columns[:6]) == ["model", "lambda", "seed", "fid", "precision", "recall"]
    assert math.isnan(rows.loc[0, "w_ratio"]) and math.isnan(rows.loc[0, "ess"])


def test_summary_means_intervals_and_paired_differences():
    summary = summarize(sweep_rows(_show()))
    assert summary[["model", "lambda"]].values.tolist() == [["baseline", 0.1], ["baseline", 30.0], ["agm", 0.1],
                                                            ["agm", 30.0], ["shuffled", 0.1], ["shuffled", 30.0]]
    s = summary.set_index(["model", "lambda"])
    assert (s["seeds"] == 2).all()
    assert s.loc[("baseline", 0.1), "fd_digits"] == pytest.approx(21.0)
    assert s.loc[("baseline", 0.1), "fd_digits_ci"] == pytest.approx(T_975_DF1)  # t · √2 / √2
    assert math.isnan(s.loc[("baseline", 30.0), "w_ratio"])
    assert s.loc[("agm", 0.1), "ess"] == pytest.approx(0.9)
    assert s.loc[("agm", 0.1), "ess_ci"] == pytest.approx(0.0)
    for (model, lam), runs in [(("agm", 0.1), AGM[0.1]), (("agm", 30.0), AGM[30.0]),
                               (("shuffled", 0.1), SHUFFLED[0.1]), (("shuffled", 30.0), SHUFFLED[30.0])]:
        assert s.loc[(model, lam), "paired_seeds"] == "0 1"
        for i, m in enumerate(("fd_digits", "precision", "recall")):
            diffs = [runs[(model, seed)][i] - BASELINE[("baseline", seed)][i] for seed in (0, 1)]
            half = T_975_DF1 * statistics.stdev(diffs) / math.sqrt(2)  # closed form for two seeds
            assert s.loc[(model, lam), f"{m}_minus_baseline"] == pytest.approx(statistics.mean(diffs))
            assert s.loc[(model, lam), f"{m}_minus_baseline_ci"] == pytest.approx(half)
            assert s.loc[(model, lam), f"{m}_minus_baseline_excludes_0"] == (abs(statistics.mean(diffs)) > half)
    # AGM at λ = 30: FD differences 5, 8 -> 6.5 ± 19.06 contains 0; recall -0.1, -0.1 -> ± 0 excludes it
    assert not s.loc[("agm", 30.0), "fd_digits_minus_baseline_excludes_0"]
    assert s.loc[("agm", 30.0), "recall_minus_baseline_excludes_0"]
    assert s.loc[("baseline", 0.1), ["paired_seeds", "fd_digits_minus_baseline"]].isna().all()


def test_seeds_without_a_baseline_are_left_out_of_the_pairing():
    runs = BASELINE | AGM[0.1] | {("agm", 2): (19.0, 0.64, 0.85)}
    s = summarize(sweep_rows([_rev("workspace", 0.1, runs)])).set_index("model")
    assert s.loc["agm", "seeds"] == 3 and s.loc["baseline", "seeds"] == 2
    assert s.loc["agm", "paired_seeds"] == "0 1"
    assert s.loc["agm", "fd_digits_minus_baseline"] == pytest.approx(-1.5)  # (18-20 + 21-22) / 2
    assert s.loc["agm", "fd_digits"] == pytest.approx(58.0 / 3)  # the mean uses all three seeds


def test_one_paired_seed_has_no_interval():
    s = summarize(sweep_rows([_rev("workspace", 0.1, {("baseline", 0): (20.0, 0.6, 0.8),
                                                      ("agm", 0): (18.0, 0.6, 0.8)})])).set_index("model")
    assert s.loc["agm", "fd_digits_minus_baseline"] == pytest.approx(-2.0)
    assert math.isnan(s.loc["agm", "fd_digits_minus_baseline_ci"])
    assert pd.isna(s.loc["agm", "fd_digits_minus_baseline_excludes_0"])  # undefined: an empty cell


def test_conflicting_results_for_one_run_are_an_error():
    other = {("agm", 0): (99.0, 0.1, 0.1)}
    show = [_rev("workspace", 0.1, other), _rev("abc", 0.1, {("agm", 0): (18.0, 0.6, 0.8)})]
    with pytest.raises(ValueError, match=r"agm λ=0.1 seed 0: revs workspace, abc"):
        summarize(sweep_rows(show))


def test_no_metrics_is_an_error():
    with pytest.raises(ValueError, match="lambda"):
        sweep_rows([{"rev": "workspace", "data": {"params": {}, "metrics": {}}}])


def test_plot_is_a_png(tmp_path: Path):
    rows = sweep_rows(_show())
    # a λ = 0 revision too: left off the log axis, not an error
    rows = pd.concat([rows, sweep_rows([_rev("zero", 0.0, BASELINE | AGM[0.1])])], ignore_index=True)
    path = tmp_path / "lambda.png"
    plot_sweep(summarize(rows), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 5 * image.size[1] > 0  # five panels side by side


def test_zero_nan_null_and_missing_seeds_do_not_raise(tmp_path: Path):
    # AGM: FD exactly 0 at seed 0, precision NaN there, recall a JSON null at seed 1; the shuffled control has
    # seed 1 only (seed 0 missing) and an infinite FD
    runs = BASELINE | {("agm", 0): (0.0, math.nan, 0.8), ("agm", 1): (21.0, 0.0, 0.9),
                       ("shuffled", 1): (math.inf, 0.5, 0.5)}
    show = [_rev("workspace", 0.1, runs)]
    show[0]["data"]["metrics"]["metrics/agm/s1.json"]["data"]["recall"] = None
    rows = sweep_rows(show)
    assert math.isnan(rows.set_index(["model", "seed"]).loc[("agm", 1), "recall"])
    s = summarize(rows).set_index("model")
    assert s.loc["agm", "fd_digits"] == pytest.approx(10.5) and s.loc["shuffled", "paired_seeds"] == "1"
    assert math.isnan(s.loc["shuffled", "fd_digits"])  # an infinite value has no mean
    plot_sweep(s.reset_index(), tmp_path / "lambda.png")
    assert (tmp_path / "lambda.png").read_bytes()[:8] == PNG_MAGIC
