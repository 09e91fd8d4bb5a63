"""Stage `report`: render Figs. 3-5, Table 3 and the metric-vs-steps curve into reports/."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from agm.config import load_params, read_yaml
from agm.data import load_image_set
from agm.io import atomic_dir
from agm.report.build import build_report, load_json, read_live_curves
from stages import run

MODELS = ("baseline", "agm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--real", required=True, help="training ImageSet .npz")
    ap.add_argument("--runs", required=True, help="folder of train outputs: <model>/model.pt")
    ap.add_argument("--live", required=True, help="folder of dvclive logs: <model>/")
    ap.add_argument("--samples", required=True, help="folder of sample outputs: <model>/grid.npy")
    ap.add_argument("--metrics", required=True, help="folder of metrics: <model>.json, features.json")
    ap.add_argument("--steps", required=True, help="folder of metric-vs-steps CSVs: <model>.csv")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    load_params(args.params)  # validate everything the report prints
    params = read_yaml(args.params)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    metrics_dir, steps_dir = Path(args.metrics), Path(args.steps)
    with atomic_dir(args.out) as out:
        files = build_report(
            out_dir=out, params=params, git_rev=rev or "unknown", profile=args.profile, models=MODELS,
            real=load_image_set(args.real).images,
            grids={m: np.load(Path(args.samples) / m / "grid.npy") for m in MODELS},
            curves={m: read_live_curves(Path(args.live) / m) for m in MODELS},
            metrics={m: [load_json(metrics_dir / f"{m}.json")] for m in MODELS},
            features_metrics=load_json(metrics_dir / "features.json"),
            steps={m: pd.read_csv(steps_dir / f"{m}.csv") for m in MODELS if (steps_dir / f"{m}.csv").exists()},
            agm_model=Path(args.runs) / "agm" / "model.pt" if params["lambda"] > 0 else None,
        )
    print(f"report: {Path(args.out) / files.markdown.name}, {Path(args.out) / files.html.name}")


if __name__ == "__main__":
    run(main)
