"""Tests for agm/report/table2.py: the paper's Table 2 beside a run's values, and each value's origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from agm.config.params import load_params
from agm.report.build import params_mapping
from agm.report.table2 import ROWS, lookup, table2

ROOT = Path(__file__).resolve().parents[2]
PAPER = params_mapping(load_params(ROOT / "profiles" / "paper.yaml"))
DEFAULT = params_mapping(load_params(ROOT / "params.yaml"))


def test_the_paper_profile_uses_every_value_the_paper_gives() -> None:
    table = table2(PAPER, PAPER, "paper").set_index("params key")
    assert not table["Status"].str.contains("changed").any(), table[table["Status"].str.contains("changed")]
    assert (table.loc[[r.key for r in ROWS if r.in_table2 and r.paper is not None], "Status"] == "paper").all()
    assert len([r for r in ROWS if r.in_table2]) == 15  # the paper's Table 2 has 15 rows


def test_the_default_profile_says_which_values_it_changed() -> None:
    table = table2(DEFAULT, PAPER, "default").set_index("params key")
    assert table.loc["train.steps", "Status"] == "paper; changed for the default profile"
    assert table.loc["train.steps", "Paper"] == "500,000" and table.loc["train.steps", "This run (default)"] == "1,000"
    assert table.loc["potential.mu", "Status"] == "chosen (paper's value lost)"
    assert table.loc["potential.mu", "Paper"] == "lost"
    assert table.loc["train.lr", "Status"] == "chosen (paper's value lost); changed for the default profile"
    assert table.loc["sample.num_samples", "Status"] == "paper"  # 10,000 samples on the CPU too
    assert table.loc["lambda", "Status"] == "paper"
    assert table.loc["bridge.sigma_max", "Status"] == "chosen (not in the paper)"


def test_a_changed_lambda_shows_as_changed() -> None:
    run = {**DEFAULT, "lambda": 1.0}
    assert table2(run, PAPER, "default").set_index("params key").loc["lambda", "Status"] == (
        "paper; changed for the default profile")


def test_lookup_names_a_missing_key() -> None:
    assert lookup(DEFAULT, "train.steps") == 1000
    with pytest.raises(KeyError, match="train.stepz"):
        lookup(DEFAULT, "train.stepz")
