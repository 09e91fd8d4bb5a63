"""Tests for agm.report.tables: Table 3 values and deltas, rendering."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agm.report.tables import (
    DELTA_ABS,
    DELTA_REL,
    PAPER_TABLE3,
    na,
    number,
    paper_table3,
    paper_table3_values,
    table3,
    table3_values,
    to_html,
    to_markdown,
)

# t quantiles from tables: t_{0.975, 1} = 12.7062047..., t_{0.95, 2} = 2.9199855...
T_975_DF1 = 12.706204736174707
T_95_DF2 = 2.919985580355516


REPRODUCED = {
    "baseline": {
        "distance": [30.0, 31.0, 29.5],
        "precision": [0.70, 0.71, 0.69],
        "recall": [0.93, 0.94, 0.92],
    },
    "agm": {
        "distance": [27.0, 28.0, 26.5],
        "precision": [0.72, 0.73, 0.71],
        "recall": [0.95, 0.96, 0.94],
    },
    "agm_no_sg": {"distance": [80.0], "precision": [0.2], "recall": [0.3]},
}


def test_table3_values_equal_inputs() -> None:
    values = table3_values(REPRODUCED)
    assert list(values.models) == ["baseline", "agm", "agm_no_sg"]
    for model, metrics in REPRODUCED.items():
        for metric, seeds in metrics.items():
            ci = values.models[model][metric]
            assert ci.mean == pytest.approx(np.mean(seeds))
            assert ci.n == len(seeds)
    # hand-computed: baseline FD mean 30.1667, agm 27.1667
    assert values.delta_abs["distance"].value == pytest.approx(-3.0)
    assert values.delta_rel["distance"].value == pytest.approx(-300.0 / (90.5 / 3))
    assert values.delta_abs["precision"].value == pytest.approx(0.02)
    assert values.delta_rel["precision"].value == pytest.approx(100 * 0.02 / 0.70)
    assert values.delta_abs["recall"].value == pytest.approx(0.02)
    assert values.delta_rel["recall"].value == pytest.approx(100 * 0.02 / 0.93)


def test_table3_rendered_cells_match_values() -> None:
    df = table3(REPRODUCED, distance_name="FD (digits classifier)")
    assert list(df.columns) == [
        "Model",
        "FD (digits classifier)",
        "Precision",
        "Recall",
        "seeds",
    ]
    assert list(df["Model"]) == ["baseline", "agm", "agm_no_sg", DELTA_ABS, DELTA_REL]
    values = table3_values(REPRODUCED)
    rows = df.set_index("Model")
    for model in REPRODUCED:
        for column, metric in [
            ("FD (digits classifier)", "distance"),
            ("Precision", "precision"),
            ("Recall", "recall"),
        ]:
            cell = rows.loc[model, column]
            ci = values.models[model][metric]
            if ci.n > 1:
                mean, half_width = (float(part) for part in cell.split(" ± "))
                assert half_width == pytest.approx(ci.half_width, abs=5e-3)
            else:
                mean = float(cell)
            assert mean == pytest.approx(np.mean(REPRODUCED[model][metric]), abs=5e-3)
    assert rows.loc["baseline", "seeds"] == "3"
    assert rows.loc["agm_no_sg", "seeds"] == "1"
    assert rows.loc[DELTA_ABS, "FD (digits classifier)"] == "-3.00"
    assert rows.loc[DELTA_ABS, "Precision"] == "+0.020"
    assert rows.loc[DELTA_REL, "Precision"] == f"{100 * 0.02 / 0.70:+.1f}%"


def test_table3_requires_baseline_and_agm() -> None:
    with pytest.raises(ValueError, match="agm"):
        table3({"baseline": REPRODUCED["baseline"]}, distance_name="FD")
    with pytest.raises(ValueError, match="lacks metrics"):
        table3(
            {"baseline": {"distance": [1.0]}, "agm": REPRODUCED["agm"]},
            distance_name="FD",
        )


def test_paper_table3_deltas() -> None:
    values = paper_table3_values()
    assert values.models["baseline"]["distance"].mean == PAPER_TABLE3["baseline"]["fid"]
    assert values.delta_abs["distance"].value == pytest.approx(-3.06)
    assert round(values.delta_rel["distance"].value, 1) == -10.7
    assert values.delta_abs["precision"].value == pytest.approx(0.020)
    assert round(values.delta_rel["precision"].value, 1) == 2.8
    assert values.delta_abs["recall"].value == pytest.approx(0.020)
    assert round(values.delta_rel["recall"].value, 1) == 2.1


def test_paper_table3_rendered() -> None:
    rows = paper_table3().set_index("Model")
    assert list(rows.columns) == ["FID", "Precision", "Recall"]
    assert list(rows.loc["baseline"]) == ["28.53", "0.705", "0.932"]
    assert list(rows.loc["agm"]) == ["25.47", "0.725", "0.952"]
    assert list(rows.loc[DELTA_ABS]) == ["-3.06", "+0.020", "+0.020"]
    assert list(rows.loc[DELTA_REL]) == ["-10.7%", "+2.8%", "+2.1%"]


def test_to_markdown_layout() -> None:
    df = pd.DataFrame({"Model": ["a|b", "c"], "score": [1.5, float("nan")]})
    assert to_markdown(df) == ("| Model | score |\n|---|---:|\n| a\\|b | 1.5 |\n| c |  |\n")


def test_to_markdown_of_table3_has_one_line_per_row() -> None:
    df = table3(REPRODUCED, distance_name="FD")
    lines = to_markdown(df).splitlines()
    assert len(lines) == 2 + len(df)
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    assert all(line.count(" | ") == len(df.columns) - 1 for line in lines[2:])


def test_to_html_escapes() -> None:
    text = to_html(pd.DataFrame({"Model": ["<agm>"], "FD": [1.0]}))
    assert text.lstrip().startswith("<table")
    assert "&lt;agm&gt;" in text and "<agm>" not in text


def test_number_and_na() -> None:
    assert na("seed 1 missing") == "n/a (seed 1 missing)"
    assert number(0.0, 3) == "0.000" and number(0.02, 3, sign="+") == "+0.020"
    assert number(math.nan, 3) == "n/a (NaN)" and number(-math.inf, 1, sign="+") == "n/a (inf)"


def test_zero_baseline_makes_the_relative_delta_na() -> None:
    # a tiny model's honest precision of exactly 0: the relative change over it is undefined, not an error
    reproduced = {"baseline": {"distance": [30.0, 31.0], "precision": [0.0, 0.0], "recall": [0.0, 0.5]},
                  "agm": {"distance": [0.0, 0.0], "precision": [0.02, 0.02], "recall": [0.1, 0.1]}}
    values = table3_values(reproduced, seeds=[0, 1])
    assert values.delta_abs["precision"].value == pytest.approx(0.02)
    assert values.delta_rel["precision"].reason == "baseline precision is 0"
    rows = table3(reproduced, "FD", seeds=[0, 1]).set_index("Model")
    assert rows.loc[DELTA_ABS, "Precision"] == "+0.020"
    assert rows.loc[DELTA_REL, "Precision"] == "n/a (baseline precision is 0)"
    assert rows.loc[DELTA_REL, "Recall"] == f"{100 * (0.1 - 0.25) / 0.25:+.1f}%"  # a mean of 0.25: computed
    assert rows.loc["agm", "FD"] == "0.00 ± 0.00"  # a metric of 0 is a value like any other
    assert rows.loc[DELTA_REL, "FD"] == "-100.0%"


def test_nan_and_missing_seeds_render_na_with_the_reason() -> None:
    reproduced = {"baseline": {"distance": [30.0, math.nan], "precision": [0.7, 0.7], "recall": [0.9, 0.9]},
                  "agm": {"distance": [27.0, 28.0], "precision": [0.72, None], "recall": [math.inf, 0.9]},
                  "control": {"distance": [None, None], "precision": [0.1, 0.2], "recall": [0.3, 0.4]}}
    rows = table3(reproduced, "FD", seeds=[3, 7]).set_index("Model")
    assert rows.loc["baseline", "FD"] == "n/a (seed 7 is NaN)"
    assert rows.loc["agm", "Precision"] == "n/a (seed 7 missing)"
    assert rows.loc["agm", "Recall"] == "n/a (seed 3 is inf)"
    assert rows.loc["control", "FD"] == "n/a (seeds 3, 7 missing)"
    assert rows.loc["control", "seeds"] == "2"
    assert rows.loc[DELTA_ABS, "FD"] == rows.loc[DELTA_REL, "FD"] == "n/a (baseline: seed 7 is NaN)"
    assert rows.loc[DELTA_REL, "Precision"] == "n/a (agm: seed 7 missing)"
    assert rows.loc[DELTA_ABS, "Recall"] == "n/a (agm: seed 3 is inf)"
    unnamed = table3(reproduced, "FD").set_index("Model")  # without seeds the reason names no seed
    assert unnamed.loc["baseline", "FD"] == "n/a (NaN)" and unnamed.loc["agm", "Precision"] == "n/a (1 of 2 missing)"
    assert "n/a (seed 7 is NaN)" in to_markdown(table3(reproduced, "FD", seeds=[3, 7]))


