"""The sample quality of one trained model against the number of sampling steps (NFE).

    python -m tools.nfe_curve --params params.yaml --model runs/baseline/s0/model.pt \
        --features data/features --nfe 10 20 40 80 160 --out docs/notes/nfe_curve.csv

Draws ``sample.num_samples`` images at each NFE with the sample stage's seeds (the same noise at every NFE)
and scores them as the evaluate stage does. It chose the default profile's ``sample.nfe``
(docs/notes/default-profile.md).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agm.config.device import resolve_device
from agm.config.params import load_params
from agm.io.data import to_uint8
from agm.math.metrics.sample_quality import feature_extractor, load_real_features, sample_quality
from agm.math.solver import sample_batch
from agm.models.files import image_shape, load_drift
from agm.training.checkpoints import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--nfe", type=int, nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load_params(args.params, ["sample", "eval", "execution"])
    sample_params, eval_params = params.sample, params.eval
    device = resolve_device(params.execution.device)
    space = eval_params.feature_space
    real = load_real_features(args.features, space, eval_params.inception_weights)
    extract = feature_extractor(space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=eval_params.inception_weights, device=device,
                                batch_size=eval_params.batch_size)
    f = load_drift(args.model, device)
    shape = image_shape(load_checkpoint(args.model))
    rows = []
    for nfe in args.nfe:
        t0 = time.perf_counter()
        with torch.no_grad():
            n, size = sample_params.num_samples, sample_params.batch_size
            images = np.concatenate([to_uint8(sample_batch(f, b, n, size, shape, nfe, sample_params.g, args.seed,
                                                           device)).cpu().numpy() for b in range(math.ceil(n / size))])
        seconds = time.perf_counter() - t0
        rows.append({"nfe": nfe, **sample_quality(real.features, extract(images), k=eval_params.k).record(space),
                     "sample_s": round(seconds, 2)})
        print(rows[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
