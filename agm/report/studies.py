"""The committed studies' verdicts (docs/results/verdicts.yaml), one line each with their date and commit, so a
reader of the report sees what the λ sweep, the power study and the tests of the paper's other claims concluded
beside this run's one λ."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from agm.config.errors import DataError
from agm.report.page import Section

FIELDS = ("title", "page", "date", "commit", "verdict")


@dataclass(frozen=True)
class Study:
    title: str
    page: str  # the study's page, relative to the repository root
    date: str
    commit: str  # the code it ran at
    verdict: str


def load_studies(path: str | os.PathLike[str]) -> list[Study]:
    """Read the verdicts file: a list of mappings with exactly the keys FIELDS; one-line errors otherwise."""
    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, list):
        raise DataError(f"{path}: expected a list of studies")
    studies = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            raise DataError(f"{path}: study {i} must have exactly the keys {list(FIELDS)}")
        studies.append(Study(**{k: str(entry[k]).strip() for k in FIELDS}))
    return studies


def studies_section(studies: list[Study], root_from_report: str) -> list[Section]:
    """One row per study: a link to its page (``root_from_report``: the repository root as seen from the
    report's folder), its date, the commit it ran at and its verdict."""
    if not studies:
        return []
    rows_md = [f"| [{s.title}]({root_from_report}/{s.page}) | {s.date} | {s.commit} | {s.verdict} |" for s in studies]
    table_md = "\n".join(["| Study | Date | Commit | Verdict |", "|---|---|---|---|", *rows_md])
    esc = html.escape
    rows_html = "".join(f'<tr><td><a href="{esc(root_from_report)}/{esc(s.page)}">{esc(s.title)}</a></td>'
                        f"<td>{esc(s.date)}</td><td>{esc(s.commit)}</td><td>{esc(s.verdict)}</td></tr>"
                        for s in studies)
    table_html = ("<table><thead><tr><th>Study</th><th>Date</th><th>Commit</th><th>Verdict</th></tr></thead>"
                  f"<tbody>{rows_html}</tbody></table>")
    text = ("This run is one λ and the seeds in params.yaml; the committed studies below answer what it cannot: "
            "where training converges, how the result depends on λ, whether an effect of the paper's size exists "
            "at a power that could see it, and whether the paper's metric-vs-steps and stop-gradient claims hold. "
            "They ran on the default profile: 8×8 digits, distances in the digit classifier's feature space "
            "(fd_digits, kd_digits). The studies at 1,000 training steps (the λ sweep, the power study, the "
            "metric-vs-steps claim) speak for early training: the learning curve, first, shows 1,000 steps mid-way "
            "down the curve.")
    title = "Studies: the learning curve, the λ sweep, the power study and the paper's claims"
    return [Section(title, text, table_md=table_md, table_html=table_html)]
