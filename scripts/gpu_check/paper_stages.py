"""``stages``: the paper-path stages (prepare, features with a stand-in Inception, train baseline and AGM, sample,
evaluate), at the slow test's tiny sizes, run as dvc.yaml writes them, on this device."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from tools.pipeline import read_metrics, read_params, write_params

from .common import PAPER, run_stages, write_part


def section_stages(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from paper_inputs import PAPER_TINY_SIZES, synthetic_images, write_image_folder, write_standin_inception

    work = tmp / "paper_stages"
    work.mkdir()
    inputs = tmp / "inputs"
    write_image_folder(inputs / "images", synthetic_images(80))
    weights = write_standin_inception(inputs / "inception")
    overrides = {**PAPER_TINY_SIZES, "data.source": "folder", "data.name": "", "data.path": str(inputs / "images"),
                 "eval.inception_weights": str(weights), "train.amp": "none" if args.dry_run else "bf16",
                 "execution.compile": False}  # compiling the 45M U-Net per stage would outlast the cap (train_compiled)
    if args.dry_run:
        overrides |= {"execution.device": "cpu"}
    write_params(read_params(PAPER), work / "params.yaml", overrides)
    names = ["source", "prepare", "features", "train_baseline@0", "train_agm@0", "sample@baseline-0", "sample@agm-0",
             "evaluate@baseline-0", "evaluate@agm-0"]
    records = run_stages(names, work, on_stage=lambda recs: write_part(args, {"stages": recs, "passed": False}))
    out: dict[str, Any] = {"stages": records, "overrides": overrides,
                           "passed": len(records) == len(names) and all(r["returncode"] == 0 for r in records)}
    if out["passed"]:
        out["metrics"] = {m: read_metrics(work, m, 0) for m in ("baseline", "agm")}
        finite = all(math.isfinite(v) for m in out["metrics"].values() for k, v in m.items()
                     if k in ("fid", "precision", "recall"))
        out["metrics_finite"] = finite
        out["metric_names"] = sorted(out["metrics"]["agm"])
        out["passed"] = finite and "fid" in out["metrics"]["agm"]
    return out
