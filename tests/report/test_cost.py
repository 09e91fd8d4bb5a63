"""Tests for agm/report/cost.py: the cost table from the cost stage's FLOPs, logged times shown with their spread."""

from __future__ import annotations

from agm.report.cost import training_cost


def test_training_cost_table() -> None:
    times = {"baseline": [[1.0, 3.0, 2.0], [4.0]], "agm": [[2.0], None], "no_detach": [None, None]}
    table = training_cost({"baseline": 1e9, "agm": 1.5e9}, times).set_index("Model")
    assert table.loc["agm", "× baseline (FLOPs)"] == "1.500"
    assert table.loc["baseline", "GFLOP / image"] == "1"
    assert table.loc["baseline", "logged s / step (median over seeds)"] == "3"  # median of the runs' 2 and 4
    assert table.loc["baseline", "range over seeds"] == "2–4"
    assert table.loc["baseline", "runs"] == "2 of 2" and table.loc["agm", "runs"] == "1 of 2"
    assert table.loc["no_detach", "GFLOP / image"] == "n/a (not counted)"
    assert table.loc["no_detach", "logged s / step (median over seeds)"] == "n/a"
    assert not any("×" in c and "FLOPs" not in c for c in table.columns)  # no wall-clock ratio

