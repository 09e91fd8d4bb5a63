"""Tests for agm/report/studies.py and the committed verdicts file it reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agm.config.errors import DataError
from agm.report.studies import load_studies, studies_section

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = ROOT / "docs" / "results" / "verdicts.yaml"


def test_every_committed_study_links_an_existing_page_with_a_date_and_commit() -> None:
    studies = load_studies(VERDICTS)
    assert {s.page for s in studies} >= {"docs/results/lambda-sweep/README.md", "docs/results/power/README.md"}
    for s in studies:
        assert (ROOT / s.page).is_file(), s.page
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", s.date), s.date
        assert re.search(r"\b[0-9a-f]{7}\b", s.commit), s.commit
        assert s.verdict and "\n" not in s.verdict


def test_the_section_links_each_page_from_the_report_folder() -> None:
    studies = load_studies(VERDICTS)
    [section] = studies_section(studies, "..")
    for s in studies:
        assert f"[{s.title}](../{s.page})" in section.table_md
        assert f'href="../{s.page}"' in section.table_html
    assert studies_section([], "..") == []


@pytest.mark.parametrize("text", ["title: one study\n", "- title: x\n  page: y\n"])
def test_a_malformed_verdicts_file_is_one_line_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "v.yaml").write_text(text)
    with pytest.raises(DataError) as info:
        load_studies(tmp_path / "v.yaml")
    assert "\n" not in str(info.value)
