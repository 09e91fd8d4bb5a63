"""Tests for agm.report.analysis on small inputs with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agm.report.analysis import (
    compare_steps,
    ewm_smooth,
    first_step_reaching,
    logged_step_times,
    mean_over_runs,
    mean_over_seeds,
    paired_gap_to_final,
    reproduced_metrics,
    weight_time_correlation,
)

T_975_DF1 = 12.706204736174707  # t_{0.975, 1}
T_975_DF2 = 4.302652729749464  # t_{0.975, 2}

# --- ewm_smooth ---------------------------------------------------------------------------------


def test_ewm_smooth_closed_form() -> None:
    # span 3 -> alpha = 2 / (3 + 1) = 0.5; adjusted weights: y_1 = (x_1 + 0.5 x_0) / 1.5, and so on.
    smoothed = ewm_smooth(pd.Series([0.0, 3.0, 6.0]), span=3)
    assert smoothed.tolist() == pytest.approx([0.0, 2.0, (6.0 + 0.5 * 3.0) / 1.75])


def test_ewm_smooth_skips_nan_and_keeps_constants() -> None:
    assert ewm_smooth(pd.Series([2.0] * 10), span=4).tolist() == pytest.approx([2.0] * 10)
    with_nan = ewm_smooth(pd.Series([1.0, math.nan, 1.0]), span=2)
    assert with_nan.tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_ewm_smooth_matches_both_callers_spans() -> None:
    # the figures' trend line (span len // 50) and the controls' collapse rule (span len // 20)
    values = pd.Series(np.random.default_rng(0).random(200))
    for divisor in (50, 20):
        span = max(2, len(values) // divisor)
        expected = values.ewm(span=span, ignore_na=True).mean()
        pd.testing.assert_series_equal(ewm_smooth(values, span), expected)


# --- first_step_reaching ------------------------------------------------------------------------


def test_first_step_reaching_lower_is_better() -> None:
    steps = [100, 200, 300, 400]
    fd = [40.0, 30.0, 28.0, 27.0]
    assert first_step_reaching(steps, fd, target=28.0) == 300  # equal counts as reached
    assert first_step_reaching(steps, fd, target=29.0) == 300
    assert first_step_reaching(steps, fd, target=50.0) == 100
    assert first_step_reaching(steps, fd, target=10.0) is None


def test_first_step_reaching_higher_is_better() -> None:
    steps = [100, 200, 300]
    recall = [0.90, 0.95, 0.93]
    assert first_step_reaching(steps, recall, target=0.94, lower_is_better=False) == 200
    assert first_step_reaching(steps, recall, target=0.99, lower_is_better=False) is None


def test_first_step_reaching_sorts_steps_and_skips_nan() -> None:
    assert first_step_reaching([300, 100, 200], [1.0, float("nan"), 2.0], target=2.0) == 200
    assert isinstance(first_step_reaching(np.array([5]), np.array([0.0]), target=1.0), int)
    with pytest.raises(ValueError, match="length"):
        first_step_reaching([1, 2], [1.0], target=0.0)


# --- metric vs steps ----------------------------------------------------------------------------


def _steps(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"step": [100, 200, 300][: len(values)], "fd": values})


def test_mean_over_seeds() -> None:
    means = mean_over_seeds([_steps([10.0, 6.0]), _steps([12.0, 8.0])], "fd")
    assert list(means.columns) == ["step", "fd", "fd_ci", "n"]
    assert means["step"].tolist() == [100, 200]
    assert means["fd"].tolist() == pytest.approx([11.0, 7.0])
    assert means["fd_ci"].tolist() == pytest.approx([T_975_DF1, T_975_DF1])  # s = √2, /√2
    assert means["n"].tolist() == [2, 2]
    one = mean_over_seeds([_steps([5.0])], "fd")
    assert one["fd"].tolist() == [5.0] and math.isnan(one["fd_ci"].iloc[0])


def test_compare_steps_finds_where_agm_reaches_the_baseline() -> None:
    steps = {"baseline": [_steps([30.0, 20.0, 10.0]), _steps([32.0, 22.0, 12.0])],
             "agm": [_steps([25.0, 10.0, 5.0]), _steps([27.0, 12.0, 7.0])]}
    comparison = compare_steps(steps, "fd")
    assert comparison.baseline_final == pytest.approx(11.0)
    assert comparison.agm_reaches_at == 200  # AGM's mean 11.0 at step 200 equals the baseline's final
    assert comparison.total_steps == 300
    assert comparison.curves["model"].tolist() == ["baseline"] * 3 + ["agm"] * 3
    never = compare_steps({"baseline": [_steps([3.0, 2.0])], "agm": [_steps([5.0, 4.0])]}, "fd")
    assert never.agm_reaches_at is None and never.total_steps == 200


def _curve(values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"step": [250, 500, 750, 1000], "fd": values})


def test_paired_gap_to_final_crossing_and_its_interval() -> None:
    """Three seeds whose gaps AGM(k) − baseline(final) are m_k − 1, m_k, m_k + 1 with m = (6, 2, −2, −6): the
    mean gap crosses 0 halfway between 500 and 750; the band m ± h (h = t_{0.975,2} · 1/√3) crosses where
    the straight lines through the snapshots say."""
    finals = [10.0, 20.0, 30.0]
    m = [6.0, 2.0, -2.0, -6.0]
    agm = [_curve([f + mk + off for mk in m]) for f, off in zip(finals, (-1.0, 0.0, 1.0), strict=True)]
    base = [_curve([f + 40.0, f + 20.0, f + 5.0, f]) for f in finals]
    gap = paired_gap_to_final({"baseline": base, "agm": agm}, "fd")
    h = T_975_DF2 / math.sqrt(3)
    assert gap.steps == [250, 500, 750, 1000] and gap.total_steps == 1000
    assert [g.mean for g in gap.gaps] == pytest.approx(m)
    assert [g.half_width for g in gap.gaps] == pytest.approx([h] * 4)
    assert gap.crossing == pytest.approx(625.0)
    assert gap.crossing_low == pytest.approx(250 + 250 * (6 - h) / ((6 - h) - (2 - h)))
    assert gap.crossing_high == pytest.approx(750 + 250 * (-2 + h) / ((-2 + h) - (-6 + h)))


def test_paired_gap_to_final_edges() -> None:
    """Reached at the first snapshot, never reached, and frames that do not pair."""
    at_once = paired_gap_to_final({"baseline": [_curve([9.0, 8.0, 7.0, 6.0])], "agm": [_curve([5.0] * 4)]}, "fd")
    assert at_once.crossing == 250.0 and at_once.crossing_low == 250.0 and at_once.crossing_high == 250.0
    never = paired_gap_to_final({"baseline": [_curve([9.0, 8.0, 7.0, 1.0])] * 2,
                                 "agm": [_curve([5.0, 4.0, 3.0, 2.0]), _curve([5.0, 4.0, 3.0, 2.5])]}, "fd")
    assert never.crossing is None and never.crossing_high is None
    assert never.crossing_low is not None  # the lower end of a two-seed band reaches 0
    with pytest.raises(ValueError, match="same number"):
        paired_gap_to_final({"baseline": [_curve([1.0] * 4)], "agm": []}, "fd")


def test_paired_gap_to_final_refuses_a_baseline_of_another_grid_and_a_nan() -> None:
    """A baseline run of other steps (its "final" is another run length) and a NaN snapshot (which would read as
    "never crosses") are refused with a message naming the frame, not turned into a verdict."""
    agm = [_curve([5.0, 4.0, 3.0, 2.0])]
    shorter = pd.DataFrame({"step": [250, 500, 750], "fd": [9.0, 8.0, 7.0]})
    with pytest.raises(ValueError, match="baseline frame of pair 0 has steps"):
        paired_gap_to_final({"baseline": [shorter], "agm": agm}, "fd")
    with pytest.raises(ValueError, match="agm frame of pair 0 has a missing or non-finite fd"):
        paired_gap_to_final({"baseline": [_curve([9.0, 8.0, 7.0, 1.0])], "agm": [_curve([5.0, float("nan"), 3.0,
                                                                                               2.0])]}, "fd")
    with pytest.raises(ValueError, match="baseline frame of pair 0 has a missing"):
        paired_gap_to_final({"baseline": [_curve([9.0, 8.0, 7.0, float("nan")])], "agm": agm}, "fd")


# --- metrics and curves -------------------------------------------------------------------------


def test_reproduced_metrics() -> None:
    metrics = {"agm": [{"fd": 1.0, "precision": 0.5, "recall": 0.6}, {"fd": 2.0, "precision": 0.7, "recall": 0.8}],
               "baseline": [{"fd": 3.0, "precision": 0.1, "recall": 0.2}] * 2}
    out = reproduced_metrics(metrics, ["baseline", "agm"], "fd")
    assert list(out) == ["baseline", "agm"]
    assert out["agm"] == {"distance": [1.0, 2.0], "precision": [0.5, 0.7], "recall": [0.6, 0.8]}


def test_weight_time_correlation_and_step_times() -> None:
    curves = [pd.DataFrame({"w_t_corr": [0.1, 0.3], "step_time_s": [math.nan, 2.0]}),
              pd.DataFrame({"w_t_corr": [0.4, 0.4], "step_time_s": [1.0, 3.0]})]
    corr = weight_time_correlation(curves)  # per-seed means 0.2 and 0.4
    assert corr.mean == pytest.approx(0.3) and corr.n == 2
    assert corr.half_width == pytest.approx(T_975_DF1 * 0.1)  # s = 0.1·√2, /√2
    assert logged_step_times({"agm": curves}) == {"agm": [[2.0], [1.0, 3.0]]}


def test_missing_runs_and_null_metrics() -> None:
    metrics = {"agm": [{"fd": 1.0, "precision": None, "recall": 0.6}, None]}
    out = reproduced_metrics(metrics, ["agm"], "fd")
    assert out["agm"]["distance"] == [1.0, None]  # None: the seed's metrics file is missing
    assert math.isnan(out["agm"]["precision"][0])  # a JSON null: NaN
    curves = [pd.DataFrame({"w_t_corr": [0.1, 0.3], "step_time_s": [1.0, 2.0]}), None]
    assert weight_time_correlation(curves, seeds=[0, 1]).format(3) == "n/a (seed 1 missing)"
    assert mean_over_runs([pd.DataFrame({"w_ess": [math.nan]})], "w_ess", seeds=[2]).format(3) == "n/a (seed 2 is NaN)"
    assert logged_step_times({"agm": curves}) == {"agm": [[1.0, 2.0], None]}


def test_metric_vs_steps_with_nan_values() -> None:
    steps = {"baseline": [_steps([30.0, math.nan])], "agm": [_steps([25.0, 10.0])]}
    comparison = compare_steps(steps, "fd")
    assert math.isnan(comparison.baseline_final) and comparison.agm_reaches_at is None
    assert mean_over_seeds([_steps([math.nan]), _steps([1.0])], "fd")["fd"].isna().all()
