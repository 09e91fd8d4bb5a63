"""tools.steps_claim: the paired gaps of the metric-vs-steps claim, against values built to have known means."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agm.report.analysis import paired_gap_to_final
from tools.steps_claim import gap_table

STEPS = [250, 500, 750, 1000]


def _frames(curves: list[np.ndarray]) -> list[pd.DataFrame]:
    return [pd.DataFrame({"step": STEPS, "fd_digits": c}) for c in curves]


def test_gap_table_pairs_each_seed_with_its_own_baseline():
    seeds = np.arange(5)
    # baseline_s(k) = 3 + s/10 + 1000/k: its own gap to its final value is 1000/k − 1 for every seed
    base = [3.0 + s / 10 + 1000.0 / np.array(STEPS) for s in seeds]
    # AGM = the same seed's baseline + δ_s, δ_s = 0.3 + 0.1 · (s − 2): mean 0.3, sample SD 0.1 · √2.5
    delta = 0.3 + 0.1 * (seeds - 2.0)
    agm = [b + d for b, d in zip(base, delta, strict=True)]
    steps = {"baseline": _frames(base), "agm": _frames(agm)}
    rows = pd.DataFrame(gap_table(0.1, steps, "fd_digits", paired_gap_to_final(steps, "fd_digits")))

    assert rows["step"].tolist() == STEPS and (rows["seeds"] == len(seeds)).all()
    own = 1000.0 / np.array(STEPS) - 1.0
    assert rows["baseline_gap_mean"].to_numpy() == pytest.approx(own, abs=1e-4)  # rounded to 4 decimals
    assert rows["baseline_gap_95_half_width"].to_numpy() == pytest.approx(0.0, abs=1e-4)
    half = stats.t.ppf(0.975, len(seeds) - 1) * 0.1 * math.sqrt(2.5) / math.sqrt(len(seeds))
    assert rows["same_step_diff_mean"].to_numpy() == pytest.approx(0.3, abs=1e-4)
    assert rows["same_step_diff_95_half_width"].to_numpy() == pytest.approx(half, abs=1e-4)
    # AGM's gap to the same seed's final baseline value: the baseline's own gap plus δ
    assert rows["gap_mean"].to_numpy() == pytest.approx(own + 0.3, abs=1e-4)
    assert rows["gap_95_half_width"].to_numpy() == pytest.approx(half, abs=1e-4)


def test_a_folder_of_csvs_gives_the_crossing_of_agm_gap(tmp_path, monkeypatch):
    import tools.steps_claim as tool

    # every seed's AGM reaches its baseline's final value 3.0 exactly at step 750: gap 1.0, 0.5, 0, −0.5
    for s in range(3):
        for model, curve in (("baseline", [5.0, 4.0, 3.5, 3.0]), ("agm", [4.0, 3.5, 3.0, 2.5])):
            (tmp_path / model).mkdir(exist_ok=True)
            pd.DataFrame({"step": STEPS, "fd_digits": curve}).to_csv(tmp_path / model / f"s{s}.csv", index=False)
    out = tmp_path / "claim.csv"
    monkeypatch.setattr("sys.argv", ["steps_claim", "--out", str(out), f"0.1={tmp_path}"])
    tool.main()
    row = pd.read_csv(out).iloc[0]
    assert row["seeds"] == 3 and str(row["agm_mean_reaches_at_step"]) == "750"
    assert row["paired_crossing"] == pytest.approx(750.0)
