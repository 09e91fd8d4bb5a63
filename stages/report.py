"""Stage `report`: assemble Table 2, Figs. 3-5, Table 3, the metric-vs-steps curve, the training cost and links to
the committed studies into reports/, from files only: metrics, training logs, metric-vs-steps CSVs, the figure
stages' folders (figures, saliency) and the cost stage's metrics. It imports no torch and draws nothing."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from agm.config.params import RESULT_KEYS, load_params
from agm.io.atomic import atomic_dir
from agm.io.provenance import code_digest, path_digest
from agm.report.build import build_report
from agm.report.outputs import RunOutputs, drawn_figures, load_json, load_optional, read_curves, read_steps
from agm.report.studies import load_studies
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--live", required=True, help="folder of dvclive logs: <model>/s<seed>/")
    ap.add_argument("--metrics", required=True, help="folder of metrics: <model>/s<seed>.json, features.json")
    ap.add_argument("--steps", required=True, help="folder of metric-vs-steps CSVs: <model>/s<seed>.csv")
    ap.add_argument("--figures", required=True, help="the figures stage's folder (figures.json and its PNGs)")
    ap.add_argument("--saliency", required=True, help="the saliency stage's folder (fig5_saliency.json, .png)")
    ap.add_argument("--cost", required=True, help="the cost stage's metrics JSON")
    ap.add_argument("--paper-profile", required=True, help="profiles/paper.yaml: the paper's setting (Table 2)")
    ap.add_argument("--studies", required=True, help="the committed studies' verdicts (YAML), linked from the page")
    ap.add_argument("--curve", required=True, help="the default profile's learning curve (plateau.json)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load_params(args.params, RESULT_KEYS)  # what changes a result: the report prints it all
    paper_profile = load_params(args.paper_profile, RESULT_KEYS)
    studies = load_studies(args.studies)
    models, seeds = ["baseline", "agm", *params.controls], list(params.seeds)
    inputs = (args.params, args.paper_profile, args.studies, args.curve, args.live, args.metrics, args.steps,
              args.figures, args.saliency, args.cost)
    provenance = {"code (stages.report)": code_digest("stages.report"),
                  **{p: path_digest(p) if Path(p).exists() else "missing" for p in inputs}}
    live, metrics_dir, steps_dir = Path(args.live), Path(args.metrics), Path(args.steps)
    figures_dir, saliency_dir = Path(args.figures), Path(args.saliency)
    missing: list[str] = []  # a seed's missing output shows as n/a in the report
    optional = functools.partial(load_optional, missing=missing)
    manifest = optional(load_json, figures_dir / "figures.json") or {}
    figures = drawn_figures(figures_dir, manifest)
    saliency = optional(load_json, saliency_dir / "fig5_saliency.json")
    if saliency is not None and saliency["potential"]:
        figures["fig5_saliency"] = saliency_dir / "fig5_saliency.png"
    outputs = RunOutputs(
        models=models, seeds=seeds,
        curves=read_curves(live, models, seeds, missing),
        metrics={m: [optional(load_json, metrics_dir / m / f"s{seed}.json") for seed in seeds] for m in models},
        features_metrics=load_json(metrics_dir / "features.json"),
        steps=read_steps(steps_dir, seeds, missing),
        figures=figures, figure_manifest=manifest, saliency=saliency,
        time_bins=manifest.get("weight_by_time", {}).get("bins"),
        cost=optional(load_json, args.cost),
    )
    if missing:
        print(f"report: missing, shown as n/a: {', '.join(missing)}", file=sys.stderr)
    with atomic_dir(args.out) as out:
        files = build_report(out_dir=out, params=params, paper_profile=paper_profile, studies=studies,
                             root_from_report=Path(os.path.relpath(".", args.out)).as_posix(), outputs=outputs,
                             provenance=provenance, profile=params.profile, plateau=load_json(args.curve))
    print(f"report: {Path(args.out) / files.markdown.name}, {Path(args.out) / files.html.name}")


if __name__ == "__main__":
    run(main)
