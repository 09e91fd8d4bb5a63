"""Tests for agm/report/sweep.py on records shaped like `dvc exp show --json` (DVC 3)."""

from __future__ import annotations

import copy
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from agm.report.stats import minimum_detectable_effect, seeds_needed
from agm.report.sweep import (
    config_id,
    incomplete,
    one_config,
    plot_sweep,
    result_params,
    summarize,
    sweep_rows,
    without_workspace,
)
from agm.report.tables import PAPER_RELATIVE_PCT

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


PARAMS = {"profile": "default", "seed": 0, "controls": [], "train": {"steps": 1000, "batch_size": 256}}
"""The params every record shares besides lambda and seeds (a few keys stand for the whole file)."""


def _rev(rev: str, lam: float, runs: dict, experiments: list | None = None, name: str | None = None,
         space: str = "digits", **params) -> dict:
    dist = {"digits": "fd_digits", "inception": "fid"}[space]
    metrics: dict = {}
    for (model, seed), (fd, p, r) in runs.items():
        metrics[f"metrics/{model}/s{seed}.json"] = {"data": {dist: fd, "precision": p, "recall": r,
                                                             "feature_space": space}}
        metrics[f"live/{model}/s{seed}/metrics.json"] = {"data": _live(model, lam)}
    metrics["metrics/report.json"] = {"data": {"fd_digits": 1.0}}  # not a per-seed metrics file: ignored
    return {"rev": rev, "name": name, "error": None, "experiments": experiments,
            "data": {"params": {"params.yaml": {"data": {**copy.deepcopy(PARAMS), "lambda": lam, "seeds": [0, 1],
                                                         **params}}},
                     "metrics": metrics}}


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
    assert list(rows.columns) == ["config", "model", "lambda", "seed", "fd_digits", "precision", "recall",
                                  "w_ratio", "ess", "rev", "name"]
    assert rows["config"].nunique() == 1  # λ and controls differ between the records, nothing else
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
    assert list(rows.columns[1:7]) == ["model", "lambda", "seed", "fid", "precision", "recall"]
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
            sd = statistics.stdev(diffs)
            if sd > 0:  # what these two paired seeds could detect, and the seeds the paper's change would need
                base = statistics.mean(BASELINE[("baseline", seed)][i] for seed in (0, 1))
                paper = PAPER_RELATIVE_PCT["distance" if m == "fd_digits" else m]
                assert s.loc[(model, lam), f"{m}_minus_baseline_mde"] == pytest.approx(
                    minimum_detectable_effect(sd, 2))
                assert s.loc[(model, lam), f"{m}_seeds_for_paper_effect"] == seeds_needed(paper / 100 * base, sd)
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
    assert math.isnan(s.loc["agm", "fd_digits_minus_baseline_mde"])  # no paired SD from one seed


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


# ---- what is not averaged together ----------------------------------------------------------------------------


def test_result_params_are_every_param_but_lambda_seeds_controls_and_execution():
    params = {**PARAMS, "lambda": 0.1, "seeds": [0, 1], "controls": ["shuffled"], "execution": {"nproc": 1}}
    assert result_params(params) == {"profile": '"default"', "seed": "0", "train.batch_size": "256",
                                     "train.steps": "1000"}
    same = {**params, "lambda": 30.0, "seeds": [2], "controls": [], "execution": {"nproc": 8}}
    assert config_id(same) == config_id(params)
    for other in ({"train": {**PARAMS["train"], "steps": 600}}, {"profile": "paper"}):
        assert config_id({**params, **other}) != config_id(params)


def test_a_run_of_other_steps_is_never_averaged_with_the_rest():
    """Seed 2 at λ = 0.1 comes from an experiment at train.steps 600: its own config, not a third seed."""
    runs = {("agm", 2): (40.0, 0.3, 0.5), ("baseline", 2): (45.0, 0.3, 0.5)}
    short = {"revs": [_rev("e1", 0.1, runs, name="short", train={"steps": 600, "batch_size": 256})],
             "name": "short", "executor": None}
    show = [_rev("workspace", 0.1, BASELINE | AGM[0.1]), _rev("abc", 0.1, BASELINE | AGM[0.1], [short])]
    rows = sweep_rows(show)
    assert rows.groupby("config").size().sort_values().tolist() == [2, 4]
    s = summarize(rows)
    agm = s[s["model"] == "agm"].set_index("config")["seeds"]
    assert sorted(agm.tolist()) == [1, 2]  # never 3
    with pytest.raises(ValueError, match=r"differ in train\.steps \(\w{8}: (1000|600), \w{8}: (600|1000)\)"):
        one_config(rows, show)
    long = config_id({**PARAMS, "lambda": 0.1})
    assert one_config(rows, show, long)["seed"].tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="no config 'nope'"):
        one_config(rows, show, "nope")
    with pytest.raises(ValueError, match="one sweep per plot"):
        plot_sweep(s, Path("unused.png"))


def test_another_profile_is_another_config():
    show = [_rev("workspace", 30.0, BASELINE | AGM[30.0], profile="paper"), _rev("abc", 0.1, BASELINE | AGM[0.1])]
    rows = sweep_rows(show)
    assert rows["config"].nunique() == 2
    with pytest.raises(ValueError, match=r"differ in profile"):
        one_config(rows, show)


def test_the_workspace_records_can_be_left_out():
    show = _show()
    kept = without_workspace(show)
    assert [e["rev"] for e in kept] == ["abc"] and len(kept[0]["experiments"]) == 4
    rows = sweep_rows(kept)
    assert "workspace" not in set(rows["rev"]) and len(rows) == 12  # the λ = 30 runs come from exp-d instead


def test_a_nan_seed_is_counted_out():
    runs = BASELINE | AGM[0.1] | {("baseline", 2): (21.0, 0.6, 0.8), ("agm", 2): (math.nan, 0.6, 0.8)}
    s = summarize(sweep_rows([_rev("workspace", 0.1, runs)])).set_index("model")
    assert s.loc["agm", "seeds"] == 3
    assert s.loc["agm", "fd_digits_n"] == 2 and s.loc["agm", "precision_n"] == 3
    assert s.loc["agm", "fd_digits"] == pytest.approx(19.5)
    assert s.loc["agm", "fd_digits_minus_baseline_n"] == 2 and s.loc["agm", "precision_minus_baseline_n"] == 3
    assert s.loc["baseline", "w_ratio_n"] == 0
    assert incomplete(s.reset_index()) == [f"agm λ=0.1 (config {s.loc['agm', 'config']}): fd_digits over 2 of 3 seeds"]


# ---- the stage: the workspace only when reproduced, one config, the seeds counted -------------------------------


def _stage(tmp_path: Path, monkeypatch, capsys, show: list, *extra: str) -> tuple[int, str]:
    """Run `python -m tools.sweep --exp-json <show> --out <tmp>/out <extra>`: (exit code, stderr)."""
    import json
    import sys

    from tools import sweep

    (tmp_path / "show.json").write_text(json.dumps(show))
    monkeypatch.setattr(sys, "argv", ["sweep", "--exp-json", str(tmp_path / "show.json"),
                                      "--out", str(tmp_path / "out"), *extra])
    try:
        sweep.main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _status(tmp_path: Path, status: dict) -> str:
    """A saved `dvc status --json` (one file per content)."""
    import json

    path = tmp_path / f"status{len(status)}.json"
    path.write_text(json.dumps(status))
    return str(path)


def test_stage_takes_the_workspace_rows_only_when_dvc_status_is_clean(tmp_path, monkeypatch, capsys):
    """The workspace's λ = 30 numbers differ from exp-d's (its metrics predate its params): kept only when
    `dvc status` is clean."""
    show = _show()
    show[0] = _rev("workspace", 30.0, BASELINE | AGM[0.1] | SHUFFLED[0.1])  # stale: λ = 0.1's metrics at λ = 30
    for extra, kept in (((), False), (("--status-json", _status(tmp_path, {"train_agm@0": []})), False),
                        (("--status-json", _status(tmp_path, {})), True)):
        code, err = _stage(tmp_path, monkeypatch, capsys, show, *extra)
        if kept:  # a clean workspace's rows are results: here they conflict with exp-d's for the same runs
            assert code == 2 and "conflicting results" in err and "workspace" in err
            continue
        assert code == 0 and "the workspace's rows are left out" in err
        assert ("train_agm@0" in err) == bool(extra)
        rows = pd.read_csv(tmp_path / "out" / "runs.csv")
        assert "workspace" not in set(rows["rev"]) and len(rows) == 12


def test_stage_asks_for_the_workspace_status_when_it_runs_dvc(tmp_path, monkeypatch, capsys):
    from tools import sweep

    answers = {("exp", "show"): _show(), ("status",): {"report": [{"changed deps": {"metrics": "modified"}}]}}
    monkeypatch.setattr(sweep, "_dvc_json", lambda *args: answers[args])
    monkeypatch.setattr("sys.argv", ["sweep", "--out", str(tmp_path / "out")])
    sweep.main()
    assert "dvc status lists report" in capsys.readouterr().err
    assert "workspace" not in set(pd.read_csv(tmp_path / "out" / "runs.csv")["rev"])


def test_stage_refuses_two_configs_and_counts_nan_seeds(tmp_path, monkeypatch, capsys):
    clean = ("--status-json", _status(tmp_path, {}))
    show = [_rev("workspace", 30.0, BASELINE | AGM[30.0], train={"steps": 600, "batch_size": 256}),
            _rev("abc", 0.1, BASELINE | AGM[0.1])]
    code, err = _stage(tmp_path, monkeypatch, capsys, show, *clean)
    assert code == 2 and err.count("\n") == 1 and "train.steps" in err and not (tmp_path / "out").exists()
    code, _ = _stage(tmp_path, monkeypatch, capsys, show, *clean, "--config", config_id({**PARAMS, "lambda": 0.1}))
    assert code == 0 and set(pd.read_csv(tmp_path / "out" / "runs.csv")["lambda"]) == {0.1}

    runs = BASELINE | AGM[0.1] | {("baseline", 2): (21.0, 0.6, 0.8), ("agm", 2): (math.nan, 0.6, 0.8)}
    code, err = _stage(tmp_path, monkeypatch, capsys, [_rev("workspace", 0.1, runs)], *clean)
    assert code == 0 and "agm λ=0.1" in err and "fd_digits over 2 of 3 seeds" in err
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("model")
    assert summary.loc["agm", "seeds"] == 3 and summary.loc["agm", "fd_digits_n"] == 2
