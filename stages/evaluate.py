"""Stage `evaluate`: Fréchet distance, kernel distance, precision and recall of one model's samples (Table 3).

The metrics are named for their feature space: `fid` and `kid` only for clean-fid's Inception-v3, `fd_digits` and
`kd_digits` (the kernel distance, agm/math/metrics/kernel.py) for the default profile's digit-classifier features. The
real features are read (and `eval.inception_weights`, `auto` or a path, resolved against their recorded sha256)
before the samples.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agm.config.device import resolve_device
from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.math.metrics.kernel import KERNEL_SEED
from agm.math.metrics.sample_quality import feature_extractor, load_real_features, sample_quality
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--samples", required=True, help="samples.npy")
    ap.add_argument("--features", required=True, help="the features stage's folder")
    ap.add_argument("--out", required=True, help="metrics JSON")
    args = ap.parse_args()
    params = load_params(args.params, ["eval", "execution"])
    eval_params = params.eval
    space = eval_params.feature_space
    t0 = time.perf_counter()
    real = load_real_features(args.features, space, eval_params.inception_weights)
    extract = feature_extractor(space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=eval_params.inception_weights,
                                device=resolve_device(params.execution.device), batch_size=eval_params.batch_size)
    q = sample_quality(real.features, extract(np.load(args.samples)), k=eval_params.k, kernel_seed=KERNEL_SEED)
    metrics = {**q.record(space), "feature_space": space, "k": eval_params.k, "n_real": q.n_real,
               "n_samples": q.n_fake, "seconds": round(time.perf_counter() - t0, 2)}
    write_json(args.out, metrics)
    print(f"evaluate: {metrics}")


if __name__ == "__main__":
    run(main)
