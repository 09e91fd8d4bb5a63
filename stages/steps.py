"""Stage `steps`: the metric against training steps, from the EMA snapshots the trainer kept.

Each snapshot (and the final model) draws `eval.snapshot_samples` images at `sample.nfe` with the same
seed, so the points differ only by the weights. Written as a CSV for `dvc plots` and the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agm.checkpoint import load_checkpoint
from agm.config import load_params, resolve_device
from agm.data import to_uint8
from agm.io import atomic_path
from agm.metrics import check_extractor, load_features, weights_digest
from agm.metrics.spaces import DISTANCE_NAMES, feature_extractor, sample_quality
from agm.model_file import image_shape, load_drift
from agm.sampler import sample_batches
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--seed", required=True, type=int, help="sampling seed (the run's training seed)")
    ap.add_argument("--run", required=True, help="the train stage's folder (model.pt, snapshots/)")
    ap.add_argument("--features", required=True)
    ap.add_argument("--out", required=True, help="CSV: step, distance, precision, recall")
    args = ap.parse_args()
    p = load_params(args.params, ["sample", "eval"])
    s, e, device = p.sample, p.eval, resolve_device(p.eval.device)
    run_dir, name = Path(args.run), DISTANCE_NAMES[p.eval.feature_space]
    real_path = Path(args.features) / "train.npz"
    real = load_features(real_path)
    if e.feature_space == "inception":  # the weights may have changed at the same path
        check_extractor(real, real_path, weights_digest(e.inception_weights), e.inception_weights)
    extract = feature_extractor(e.feature_space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=e.inception_weights, device=device, batch_size=e.batch_size)
    final = load_checkpoint(run_dir / "model.pt")
    snaps = [load_checkpoint(snap) for snap in sorted((run_dir / "snapshots").glob("ema_*.pt"))]
    points = [(ck["step"], ck["ema"]) for ck in snaps if ck["step"] < final["step"]] + [(final["step"], final["ema"])]
    rows = []
    for step, state in points:
        f = load_drift(run_dir / "model.pt", device, state=state)
        shape = image_shape(final)
        images = np.concatenate([
            to_uint8(x * 2 - 1).cpu().numpy()
            for _, x in sample_batches(f, e.snapshot_samples, s.batch_size, shape, s.nfe, s.g, args.seed, device)
        ])
        q = sample_quality(real.features, extract(images), k=e.k)
        rows.append({"step": step, name: q.distance, "precision": q.precision, "recall": q.recall})
        print(f"steps: step {step}: {rows[-1]}")
    with atomic_path(args.out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.5g")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    run(main)
