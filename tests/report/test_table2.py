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
    assert (table.loc[[r.key for r in ROWS if r.origin == "paper"], "Status"] == "paper").all()
    assert len([r for r in ROWS if r.in_table2]) == 15  # the paper's Table 2 has 15 rows


def test_each_row_says_whether_the_paper_gives_lost_or_lacks_its_value() -> None:
    """What the paper's text shows (../papers, restated in docs/spec.md): the resolution (Table 2 and §5) and the
    attention resolutions (§4.6) were stated but lost, not the paper's; σ_max and the schedule were stated with
    their values lost (§4.1), not absent; mixed precision is stated (torch.amp.autocast, §5), its dtype is not."""
    table = table2(PAPER, PAPER, "paper").set_index("params key")
    origin = {key: status.split(" (")[0] for key, status in table["Status"].items()}
    for key in ("data.resolution", "model.attn_resolutions", "model.channel_mult", "bridge.sigma_max",
                "bridge.schedule", "train.amp", "train.lr", "potential.lr", "potential.mu", "potential.clamp"):
        assert origin[key] == "lost in the text", (key, table.loc[key, "Status"])
    for key in ("train.betas", "train.grad_clip", "train.warmup_steps", "potential.widths"):
        assert origin[key] == "not in the paper", key
    assert table.loc["data.resolution", "Paper"] == "lost in the text"
    assert "torch.amp.autocast" in table.loc["train.amp", "Status"]
    assert set(origin.values()) == {"paper", "lost in the text", "not in the paper"}


def test_the_default_profile_says_which_values_it_changed() -> None:
    table = table2(DEFAULT, PAPER, "default").set_index("params key")
    assert table.loc["train.steps", "Status"] == "paper; changed for the default profile"
    assert table.loc["train.steps", "Paper"] == "500,000"
    assert table.loc["train.steps", "This run (default)"] == f"{lookup(DEFAULT, 'train.steps'):,}"
    assert table.loc["potential.mu", "Status"].startswith("lost in the text (")
    assert table.loc["potential.mu", "Paper"] == "lost in the text"
    assert table.loc["train.lr", "Status"].endswith("; changed for the default profile")
    assert table.loc["sample.num_samples", "Status"] == "paper"  # 10,000 samples on the CPU too
    assert table.loc["lambda", "Status"] == "paper"
    assert table.loc["data.resolution", "Status"].endswith("; changed for the default profile")


def test_a_changed_lambda_shows_as_changed() -> None:
    run = {**DEFAULT, "lambda": 1.0}
    assert table2(run, PAPER, "default").set_index("params key").loc["lambda", "Status"] == (
        "paper; changed for the default profile")


def test_lookup_names_a_missing_key() -> None:
    assert lookup(DEFAULT, "train.steps") == load_params(ROOT / "params.yaml", ["train"]).train.steps
    with pytest.raises(KeyError, match="train.stepz"):
        lookup(DEFAULT, "train.stepz")
