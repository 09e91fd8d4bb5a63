"""Assemble the report page from the pipeline's outputs: Figs. 3-5, Table 3, metric vs steps, the controls.

:func:`build_report` copies the figures the figure stages drew into the report's folder, calls the section
functions of :mod:`agm.report.sections` in page order and writes the page with :mod:`agm.report.page`. The
outputs come loaded (:class:`agm.report.outputs.RunOutputs`); nothing here draws, counts or imports torch.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agm.config.params import Params
from agm.report import cost as report_cost
from agm.report import sections as report_sections
from agm.report.convergence import training_length_section
from agm.report.outputs import RunOutputs
from agm.report.page import ReportFiles, Section, write_report
from agm.report.sections import FIGURES
from agm.report.studies import Study, studies_section
from agm.report.table2 import table2_section

TITLE = "AGM reproduction report"


def params_mapping(params: Params) -> dict[str, Any]:
    """The validated params as the params file's mapping, for the report's Parameters block.

    Keys keep the file's names ("lambda", not ``lam``) and the dataclasses' order (the file's documented
    order); tuples become lists. Values are the validated ones, so a float given as ``1`` shows as ``1.0``.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    out: dict[str, Any] = {}
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        out["lambda" if field.name == "lam" else field.name] = plain(value)
    return out


def build_report(*, out_dir: Path, params: Params, paper_profile: Params, studies: list[Study],
                 root_from_report: str, outputs: RunOutputs, provenance: dict[str, str],
                 profile: str, plateau: Mapping[str, Any] | None = None) -> ReportFiles:
    """Copy the drawn figures into ``out_dir/figures`` and write ``out_dir``/report.md and report.html.

    Args:
        out_dir: the report folder.
        params: the validated params file, every section (the page prints them all).
        paper_profile: the validated profiles/paper.yaml, for Table 2.
        studies: the committed studies' verdicts (agm.report.studies), linked from the page.
        root_from_report: the repository root as a path relative to ``out_dir`` (for the studies' links).
        outputs: the loaded stage outputs.
        provenance: name -> sha256 of what the page is rendered from (:func:`agm.report.page.write_report`).
        profile: name of the run profile.
        plateau: the default profile's measured learning curve (docs/results/converged/plateau.json), or None.
    """
    fig_dir = Path(out_dir) / FIGURES
    fig_dir.mkdir(parents=True, exist_ok=True)
    for png in outputs.figures.values():
        shutil.copyfile(png, fig_dir / png.name)
    sections: list[Section] = [
        *table2_section(params_mapping(params), params_mapping(paper_profile), profile),
        *report_sections.samples_section(outputs, params.sample.grid_nfe),
        *report_sections.training_curves_section(outputs),
        *report_sections.saliency_section(outputs),
        *report_sections.table3_sections(outputs, profile),
        *report_sections.every_model_section(outputs),
        *training_length_section(params.train.steps, plateau, profile),
        *report_sections.metric_vs_steps_section(outputs, params.eval.snapshot_samples),
        *report_cost.training_cost_section(outputs),
        *report_sections.weight_stats_section(outputs, params.lam),
        *report_sections.weight_by_time_section(outputs),
        *report_sections.no_detach_sections(outputs, params.potential.margin),
        *report_sections.time_only_section(outputs),
        *studies_section(studies, root_from_report),
    ]
    return write_report(out_dir, title=TITLE, sections=sections, params=params_mapping(params),
                        provenance=provenance, profile=profile)
