"""Tests for agm/report/convergence.py: the curve over seeds, doubling gains and the plateau length."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from agm.report.convergence import (
    curve_table,
    doubling_gains,
    paired_to_reference,
    plateau_length,
    training_length_section,
)


def test_curve_table_means_and_t_intervals_per_arm_and_step():
    runs = pd.DataFrame({"arm": ["a"] * 6 + ["b"], "seed": [0, 1, 2, 0, 1, 2, 0],
                         "step": [1, 1, 1, 2, 2, 2, 1], "fd": [1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 5.0]})
    curve = curve_table(runs, ["fd"])
    a1 = curve[(curve.arm == "a") & (curve.step == 1)].iloc[0]
    assert a1["n"] == 3 and a1["seeds"] == "0 1 2" and a1["fd"] == 2.0
    assert a1["fd_hw"] == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))  # sd 1 over 3 seeds
    assert curve[(curve.arm == "a") & (curve.step == 2)].iloc[0]["fd_hw"] == 0.0
    assert math.isnan(curve[curve.arm == "b"].iloc[0]["fd_hw"])  # one seed: no interval


def test_curve_table_refuses_duplicates_and_missing_columns():
    runs = pd.DataFrame({"arm": ["a", "a"], "seed": [0, 0], "step": [1, 1], "fd": [1.0, 2.0]})
    with pytest.raises(ValueError, match="more than one row"):
        curve_table(runs, ["fd"])
    with pytest.raises(ValueError, match="no column"):
        curve_table(runs.drop(columns="seed"), ["fd"])


def test_doubling_gains_are_relative_drops_between_grid_points_twice_apart():
    gains = doubling_gains([1000, 2000, 3000, 4000, 8000], [4.0, 2.0, 1.9, 1.5, 1.5])
    assert [(d.step, d.gain) for d in gains] == [(1000, 0.5), (2000, 0.25), (4000, 0.0)]
    with pytest.raises(ValueError, match="increase strictly"):
        doubling_gains([2000, 1000], [1.0, 2.0])


def test_the_plateau_is_where_every_later_doubling_gains_less_than_the_tolerance():
    steps = [1000, 2000, 4000, 8000, 16000]
    # gains: 0.6875, 0.16, 0.0476..., 0.02
    values = [4.0, 1.25, 1.05, 1.0, 0.98]
    assert plateau_length(steps, values, 0.05) == 4000
    assert plateau_length(steps, values, 0.10) == 4000
    assert plateau_length(steps, values, 0.20) == 2000
    # a doubling that gains again after a flat one resets it: the last doublings decide
    assert plateau_length(steps, [4.0, 2.0, 1.99, 1.5, 1.49], 0.05) == 8000
    # still falling at the end: no plateau within the steps run
    assert plateau_length(steps, [4.0, 2.0, 1.5, 1.2, 1.0], 0.05) is None
    # a curve that rises (overfitting) has negative gains: flat by this rule
    assert plateau_length(steps, [4.0, 1.2, 1.3, 1.4, 1.5], 0.05) == 2000


def test_paired_differences_take_the_same_seed_and_step_of_the_reference():
    runs = pd.DataFrame({"arm": ["baseline"] * 3 + ["agm"] * 3, "seed": [0, 1, 2, 0, 1, 5],
                         "step": [10] * 6, "fd": [1.0, 2.0, 9.0, 1.5, 2.5, 0.0]})
    paired = paired_to_reference(runs, ["fd"])
    row = paired.iloc[0]
    assert (row["arm"], row["step"], row["n"], row["seeds"]) == ("agm", 10, 2, "0 1")  # seeds 2 and 5 unpaired
    assert row["d_fd"] == 0.5 and row["d_fd_hw"] == 0.0


PLATEAU = {"arms": {
    "baseline": {"doublings": [{"step": 1000, "gain": 0.59}, {"step": 2000, "gain": 0.13},
                               {"step": 4000, "gain": -0.11}], "plateau_length_5pct": 4000},
    "agm_l0.1": {"doublings": [{"step": 1000, "gain": 0.53}, {"step": 2000, "gain": 0.29},
                               {"step": 4000, "gain": -0.23}], "plateau_length_5pct": 4000}}}


@pytest.mark.parametrize("steps,where,gain", [(1000, "short of", "-59% (baseline)"), (4000, "at", "+11% (baseline)"),
                                              (8000, "past", None)])
def test_the_report_says_where_the_run_sits_on_the_measured_curve(steps, where, gain):
    [section] = training_length_section(steps, PLATEAU, "default")
    assert f"This run trains {steps:,} steps." in section.text
    assert "every doubling after 4,000 steps gains less than 5%" in section.text
    assert f"the run is {where} the plateau." in section.text
    assert (gain in section.text) if gain else "Doubling this run's steps" not in section.text


def test_no_training_length_for_another_profile_or_without_the_curve():
    assert training_length_section(4000, PLATEAU, "paper") == []
    assert training_length_section(4000, None, "default") == []
