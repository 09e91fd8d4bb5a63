"""Stage `evaluate`: Fréchet distance, precision and recall of one model's samples (paper Table 3).

The metric is named for its feature space: `fid` only for clean-fid's Inception-v3, `fd_digits` for the
default profile's digit-classifier features.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agm.config import load_params, resolve_device
from agm.io import write_json
from agm.metrics import check_extractor, load_features, weights_digest
from agm.metrics.spaces import DISTANCE_NAMES, feature_extractor, sample_quality
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--samples", required=True, help="samples.npy")
    ap.add_argument("--features", required=True, help="the features stage's folder")
    ap.add_argument("--out", required=True, help="metrics JSON")
    args = ap.parse_args()
    p = load_params(args.params, ["eval"]).eval
    t0 = time.perf_counter()
    real_path = Path(args.features) / "train.npz"
    real = load_features(real_path)
    if real.space != p.feature_space:
        raise ValueError(f"{args.features} holds {real.space!r} features but eval.feature_space is "
                         f"{p.feature_space!r}; re-run the features stage")
    if p.feature_space == "inception":  # the weights may have changed at the same path
        check_extractor(real, real_path, weights_digest(p.inception_weights), p.inception_weights)
    extract = feature_extractor(p.feature_space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=p.inception_weights,
                                device=resolve_device(p.device), batch_size=p.batch_size)
    fake = extract(np.load(args.samples))
    q = sample_quality(real.features, fake, k=p.k)
    metrics = {DISTANCE_NAMES[p.feature_space]: round(q.distance, 4), "precision": round(q.precision, 4),
               "recall": round(q.recall, 4), "feature_space": p.feature_space, "k": p.k,
               "n_real": q.n_real, "n_samples": q.n_fake, "seconds": round(time.perf_counter() - t0, 2)}
    write_json(args.out, metrics)
    print(f"evaluate: {metrics}")


if __name__ == "__main__":
    run(main)
