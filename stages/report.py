"""Stage `report`: render Table 2, Figs. 3-5, Table 3, the metric-vs-steps curve, the training cost and links to
the committed studies into reports/."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from agm.config.params import RESULT_KEYS, load_params
from agm.io.atomic import atomic_dir
from agm.io.data import load_image_set
from agm.io.provenance import code_digest, path_digest
from agm.math.time_bins import TimeWeightTable
from agm.models.files import has_potential
from agm.report.build import build_report, load_json, load_optional, read_live_curves
from agm.report.sections import RunOutputs
from agm.report.studies import load_studies
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--real", required=True, help="training ImageSet .npz")
    ap.add_argument("--runs", required=True, help="folder of train outputs: <model>/s<seed>/model.pt")
    ap.add_argument("--live", required=True, help="folder of dvclive logs: <model>/s<seed>/")
    ap.add_argument("--samples", required=True, help="folder of sample outputs: <model>/s<seed>/grid.npy")
    ap.add_argument("--metrics", required=True, help="folder of metrics: <model>/s<seed>.json, features.json")
    ap.add_argument("--steps", required=True, help="folder of metric-vs-steps CSVs: <model>/s<seed>.csv")
    ap.add_argument("--paper-profile", required=True, help="profiles/paper.yaml: the paper's setting (Table 2)")
    ap.add_argument("--studies", required=True, help="the committed studies' verdicts (YAML), linked from the page")
    ap.add_argument("--curve", required=True, help="the default profile's learning curve (plateau.json)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load_params(args.params, RESULT_KEYS)  # what changes a result: the report prints it all
    paper_profile = load_params(args.paper_profile, RESULT_KEYS)
    studies = load_studies(args.studies)
    models, seeds = ["baseline", "agm", *params.controls], list(params.seeds)
    inputs = (args.params, args.paper_profile, args.studies, args.curve, args.real, args.runs, args.live, args.samples,
              args.metrics, args.steps)
    provenance = {"code (stages.report)": code_digest("stages.report"),
                  **{p: path_digest(p) if Path(p).exists() else "missing" for p in inputs}}
    runs, live, samples = Path(args.runs), Path(args.live), Path(args.samples)
    metrics_dir, steps_dir = Path(args.metrics), Path(args.steps)
    first = f"s{seeds[0]}"
    missing: list[str] = []  # a seed's missing output shows as n/a in the report
    optional = functools.partial(load_optional, missing=missing)
    agm_model = runs / "agm" / first / "model.pt"
    with_v = not agm_model.is_file() or has_potential(agm_model)  # AGM's V as its run built it (missing: n/a)
    outputs = RunOutputs(
        models=models, seeds=seeds,
        real=load_image_set(args.real).images,
        grids={m: optional(np.load, samples / m / first / "grid.npy") for m in models},
        curves={m: [optional(read_live_curves, live / m / f"s{seed}") for seed in seeds] for m in models},
        metrics={m: [optional(load_json, metrics_dir / m / f"s{seed}.json") for seed in seeds] for m in models},
        features_metrics=load_json(metrics_dir / "features.json"),
        steps={m: [optional(pd.read_csv, steps_dir / m / f"s{seed}.csv") for seed in seeds]
               for m in ("baseline", "agm")},
        agm_model=agm_model if with_v else None,
        time_table=optional(TimeWeightTable.load, runs / "agm" / first / "time_weights.json") if with_v else None,
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
