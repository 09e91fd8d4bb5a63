"""Stage `figures`: Figs. 3 and 4, the metric-vs-steps curve and the importance-weight figures, each PNG beside the
data it was drawn from (agm.report.run_figures), from the sample grids, the training logs, the metric-vs-steps
CSVs and AGM's per-t weight table. The report reads the folder; it draws nothing itself."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from agm.config.feature_spaces import DISTANCE_NAMES
from agm.config.params import load_params
from agm.io.atomic import atomic_dir
from agm.io.data import load_image_set
from agm.math.time_bins import TimeWeightTable
from agm.models.files import has_potential
from agm.report.outputs import load_json, load_optional, read_curves, read_steps
from agm.report.run_figures import FigureInputs, render_figures
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--real", required=True, help="training ImageSet .npz")
    ap.add_argument("--features-metrics", required=True, help="the features stage's metrics JSON (feature space)")
    ap.add_argument("--runs", required=True, help="folder of train outputs: agm/s<seed>/model.pt, time_weights.json")
    ap.add_argument("--live", required=True, help="folder of dvclive logs: <model>/s<seed>/")
    ap.add_argument("--samples", required=True, help="folder of sample outputs: <model>/s<seed>/grid.npy")
    ap.add_argument("--steps", required=True, help="folder of metric-vs-steps CSVs: <model>/s<seed>.csv")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load_params(args.params, ["seeds", "controls"])
    models, seeds = ["baseline", "agm", *params.controls], list(params.seeds)
    first = f"s{seeds[0]}"
    runs, live, samples, steps = Path(args.runs), Path(args.live), Path(args.samples), Path(args.steps)
    missing: list[str] = []
    optional = functools.partial(load_optional, missing=missing)
    agm_model = runs / "agm" / first / "model.pt"
    with_v = agm_model.is_file() and has_potential(agm_model)  # AGM at λ = 0 has no V: no weight-by-t figure
    table = optional(TimeWeightTable.load, runs / "agm" / first / "time_weights.json") if with_v else None
    inputs = FigureInputs(
        models=models, seeds=seeds,
        dist=DISTANCE_NAMES[load_json(args.features_metrics)["feature_space"]],
        real=load_image_set(args.real).images,
        grids={m: optional(np.load, samples / m / first / "grid.npy") for m in models},
        curves=read_curves(live, models, seeds, missing),
        steps=read_steps(steps, seeds, missing),
        time_weights=table.weights if table is not None else None,
    )
    if missing:
        print(f"figures: missing, skipped: {', '.join(missing)}", file=sys.stderr)
    sample_paths = {m: (samples / m / first / "grid.npy").as_posix() for m in models}
    with atomic_dir(args.out) as out:
        drawn = render_figures(inputs, out, sample_paths)
    print(f"figures: {', '.join(k for k, v in drawn.items() if 'png' in v)} into {args.out}")


if __name__ == "__main__":
    run(main)
