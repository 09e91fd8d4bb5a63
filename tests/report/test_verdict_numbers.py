"""Numbers typed into docs/results (verdicts.yaml, the studies' READMEs) are checked against the CSVs they come from.

Each "the paper's −10.7% (about X)" states the paper's relative effect in the study's own units: −10.7% of that
study's baseline distance. The test recomputes it from the study's summary and asks for the stated rounding.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from agm.report.tables import PAPER_RELATIVE_PCT

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = {v["title"]: v["verdict"] for v in yaml.safe_load((ROOT / "docs/results/verdicts.yaml").read_text())}
RESULTS = ROOT / "docs" / "results"


def _sweep_baseline() -> float:
    s = pd.read_csv(RESULTS / "lambda-sweep" / "summary.csv")
    return float(s.loc[s.model == "baseline", "fd_digits"].iloc[0])


def _power_baseline() -> float:
    s = pd.read_csv(RESULTS / "power" / "summary.csv")
    row = s[(s.model == "agm") & (s["lambda"] == 0.1) & (s.reference == "baseline") & (s.metric == "fd_digits")]
    return float(row.reference_mean.iloc[0])


BASELINES = {"λ sweep": _sweep_baseline, "Power study": _power_baseline}


def _about(text: str) -> tuple[float, int]:
    """The X of "the paper's −10.7% (about X)" and its decimal places."""
    m = re.search(r"paper's −10\.7% \(about (−?[0-9.]+)\)", text)
    assert m, text
    value = m.group(1).replace("−", "-")
    return float(value), len(value.split(".")[1]) if "." in value else 0


@pytest.mark.parametrize("prefix", sorted(BASELINES))
def test_the_papers_effect_in_a_studys_units_is_computed_from_its_baseline(prefix: str) -> None:
    [verdict] = [v for title, v in VERDICTS.items() if title.startswith(prefix)]
    stated, places = _about(verdict)
    expected = PAPER_RELATIVE_PCT["distance"] / 100 * BASELINES[prefix]()
    assert stated == round(expected, max(places, 1)), (stated, expected)


def test_every_about_in_the_verdicts_is_checked() -> None:
    stated = [title for title, v in VERDICTS.items() if "(about " in v]
    assert all(any(title.startswith(p) for p in BASELINES) for title in stated), stated


def test_the_power_readme_states_the_kernel_distances_paired_sd_range_of_its_csv() -> None:
    """docs/results/power/README.md's "paired SD (A–B)" of kd_digits is the range of decomposition.csv's."""
    text = " ".join((RESULTS / "power" / "README.md").read_text().split())
    m = re.search(r"kd_digits .*? its paired SD \(([0-9]+)–([0-9]+)\)", text)
    assert m, "the README no longer states the range"
    sd = pd.read_csv(RESULTS / "power" / "decomposition.csv").query("metric == 'kd'").paired_sd
    assert (int(m.group(1)), int(m.group(2))) == (round(sd.min()), round(sd.max()))
