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


def _study_summary() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "converged" / "study" / "summary.csv").query("metric == 'fd_digits'")


def _study_baseline() -> float:
    s = _study_summary()
    return float(s[(s.model == "agm") & (s["lambda"] == 0.1) & (s.reference == "baseline")].reference_mean.iloc[0])


BASELINES = {"λ sweep": _sweep_baseline, "Power study": _power_baseline, "Study at the plateau": _study_baseline}


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


def test_the_plateau_studys_verdict_states_its_summary() -> None:
    """Each "X ± Y at λ = L" of the study at the plateau, its seed count and its minimum detectable effects are
    study/summary.csv's, rounded as written."""
    [verdict] = [v for title, v in VERDICTS.items() if title.startswith("Study at the plateau")]
    text = " ".join(verdict.replace("−", "-").split())
    s = _study_summary().set_index(["model", "lambda", "reference"])

    def row(model: str, lam: float, reference: str) -> pd.Series:
        return s.loc[(model, lam, reference)]

    expected = {("agm", 0.1, "baseline"): "AGM - baseline fd_digits {} ± {} at λ = 0.1",
                ("agm", 1.0, "baseline"): "and {} ± {} at λ = 1",
                ("shuffled", 1.0, "agm@1"): "shuffled - AGM {} ± {} at λ = 1"}
    for key, phrase in expected.items():
        r = row(*key)
        assert phrase.format(f"{r.paired_diff:+.2f}".replace("+-", "-").lstrip("+") if r.paired_diff < 0
                             else f"{r.paired_diff:+.2f}", f"{r.ci95_half_width:.2f}") in text, (phrase, r)
    mdes = [row("agm", lam, "baseline").minimum_detectable_effect for lam in (0.1, 1.0)]
    assert "minimum detectable effects ±{:.2f} and ±{:.2f}".format(*mdes) in text
    seeds = {int(row(*key).seeds) for key in expected}
    assert seeds == {int(re.search(r"(\d+) paired seeds per arm", text).group(1))}
