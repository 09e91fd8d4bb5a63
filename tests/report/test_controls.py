"""Tests for agm/report/controls.py: the collapse rule and the paired time-only comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agm.report.controls import (
    collapse_step,
    describe_collapse,
    describe_paired,
    describe_time_only,
    paired_difference,
)


def _curve(drift: list[float], potential: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"step": np.arange(1, len(drift) + 1) * 10, "drift_loss": drift, "potential_loss": potential})


def test_no_collapse_when_the_runs_agree():
    ref = _curve([1.0] * 50, [0.5] * 50)
    c = collapse_step(ref.copy(), ref, margin=1.0)
    assert c.step is None and c.last_step == 500
    assert describe_collapse(c).startswith("No collapse within 500 steps")


def test_collapse_on_a_non_finite_loss():
    ref = _curve([1.0] * 10, [0.5] * 10)
    nd = _curve([1.0] * 6 + [math.nan] * 4, [0.5] * 10)
    c = collapse_step(nd, ref, margin=1.0)
    assert c.step == 70 and "non-finite" in c.reason


def test_collapse_when_v_reaches_the_uninformative_level():
    ref = _curve([1.0] * 40, [0.5] * 40)
    nd = _curve([1.0] * 40, [0.5] * 20 + [3.0] * 20)  # L_V jumps above 2m = 2
    c = collapse_step(nd, ref, margin=1.0)
    assert c.step is not None and 210 <= c.step <= 260 and "2m" in c.reason


def test_collapse_when_the_drift_loss_blows_up():
    ref = _curve([1.0] * 40, [0.5] * 40)
    nd = _curve([1.0] * 20 + [10.0] * 20, [0.5] * 40)
    c = collapse_step(nd, ref, margin=1.0)
    assert c.step is not None and 210 <= c.step <= 260 and "drift loss" in c.reason


def test_paired_difference_closed_form():
    d = paired_difference([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])  # differences 2, 3, 1
    assert d.diff.mean == pytest.approx(2.0)
    assert d.diff.half_width == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert d.distinguishable is False  # 2 ± 2.48 contains 0
    assert "contains 0" in describe_time_only(d, "fd")
    tight = paired_difference([3.0, 3.1, 2.9], [1.0, 1.0, 1.0])
    assert tight.distinguishable is True and "AGM is better" in describe_time_only(tight, "fd")
    one = paired_difference([3.0], [1.0])
    assert one.distinguishable is None and "no verdict" in describe_time_only(one, "fd")
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([1.0, 2.0], [1.0])


def test_describe_paired_differences_against_the_reference():
    # baseline − agm per seed: 1, 1, 1 (an interval of width 0 that excludes 0); time_only − agm: -1, 0, 1
    values = {"baseline": [11.0, 21.0, 31.0], "agm": [10.0, 20.0, 30.0], "time_only": [9.0, 20.0, 31.0]}
    text = describe_paired(values, "agm", "fd")
    assert text.startswith("Paired by seed (3 seeds), fd: ")
    assert "baseline − agm = 1.00 ± 0.00 (interval excludes 0)" in text
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} · s / √n with s = 1
    assert f"time_only − agm = 0.00 ± {half:.2f} (interval contains 0)" in text
    assert "agm − agm" not in text


def test_paired_difference_with_a_missing_or_nan_seed_is_na():
    missing = paired_difference([3.0, None, 4.0], [1.0, 2.0, 3.0], seeds=[0, 1, 2])
    assert missing.diff.reason == "seed 1 missing" and missing.distinguishable is None
    text = describe_time_only(missing, "fd")
    assert text == "time-only − AGM fd: n/a (seed 1 missing) over 3 seed(s). No verdict."
    nan = paired_difference([3.0, 5.0], [math.nan, 2.0], seeds=[4, 5])
    assert nan.diff.format(2) == "n/a (seed 4 is NaN)" and nan.distinguishable is None
    both_inf = paired_difference([math.inf], [math.inf], seeds=[0])  # inf − inf: NaN, still no exception
    assert both_inf.diff.format(2) == "n/a (seed 0 is NaN)"


def test_describe_paired_names_the_seed_that_is_missing():
    values = {"baseline": [11.0, None], "agm": [10.0, 20.0], "time_only": [9.0, 21.0]}
    text = describe_paired(values, "agm", "fd", seeds=[0, 1])
    assert "baseline − agm = n/a (seed 1 missing);" in text
    assert "time_only − agm = 0.00 ± 12.71 (interval contains 0)." in text  # -1, 1: t_{0.975, 1} · √2 / √2
