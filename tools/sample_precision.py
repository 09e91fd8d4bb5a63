"""Is bf16 sampling safe? The same trained model sampled in float32 and under bf16 autocast with the same noise.

For each noise seed r (the sample stage's own batch noise of training seed r, agm.math.solver.batch_seed) it draws
``--n`` images at ``--nfe`` twice, float32 and bf16 (``sample.amp``, agm.models.samples.sampling_drift), and scores
both against the training features (the evaluate stage's metrics). The paired difference bf16 − float32 is set
against the sampling noise: the SD of the float32 distance across noise seeds, i.e. how much the metric moves when
only the noise changes. bf16 is called safe when the 95% interval of the paired difference lies inside ± that SD;
otherwise the paper profile keeps ``sample.amp: none``.

    python -m tools.sample_precision --model runs/agm/s0/model.pt --features data/features --params params.yaml \\
        --noise-seeds 0 1 2 --out docs/results/sample-precision/cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from agm.config.device import resolve_device
from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.math.metrics.sample_quality import feature_extractor, load_real_features, sample_quality
from agm.models.files import image_shape, load_drift
from agm.models.samples import gathered_samples, sampling_drift
from agm.report.stats import mean_ci
from agm.training.checkpoints import load_checkpoint
from agm.training.execution import configure_backends
from agm.training.peak_flops import device_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--features", required=True, help="the features stage's folder")
    ap.add_argument("--params", default="params.yaml", help="sample.* and eval.* come from here")
    ap.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=None, help="images per sampling (default: sample.num_samples)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    params = load_params(args.params, ["sample", "eval", "execution"])
    sp, ep = params.sample, params.eval
    n = args.n or sp.num_samples
    device = resolve_device(params.execution.device)
    configure_backends(device)
    real = load_real_features(args.features, ep.feature_space, ep.inception_weights)
    extract = feature_extractor(ep.feature_space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=ep.inception_weights, device=device, batch_size=ep.batch_size)
    shape = image_shape(load_checkpoint(args.model))
    f = load_drift(args.model, device)
    metric = f"fd_{ep.feature_space}" if ep.feature_space == "digits" else "fid"
    rows = []
    for r in args.noise_seeds:
        row: dict = {"noise_seed": r}
        for amp in ("none", "bf16"):
            t0 = time.perf_counter()
            drift = sampling_drift(f, device, amp=amp)
            images = np.concatenate([x for _, x in gathered_samples(drift, n, sp.batch_size, shape, sp.nfe, sp.g, r,
                                                                     device)])
            q = sample_quality(real.features, extract(images), k=ep.k).record(ep.feature_space, ndigits=None)
            row |= {f"{k}_{amp}": v for k, v in q.items()} | {f"seconds_{amp}": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    key = "fd_digits" if ep.feature_space == "digits" else "fid"
    diffs = [row[f"{key}_bf16"] - row[f"{key}_none"] for row in rows]
    ci = mean_ci(diffs)
    noise_sd = statistics.stdev(row[f"{key}_none"] for row in rows) if len(rows) > 1 else float("nan")
    inside = abs(ci.mean) + ci.half_width < noise_sd
    result = {
        "model": args.model, "n": n, "nfe": sp.nfe, "g": sp.g, "metric": key, "device": str(device),
        "machine": device_name(device), "torch": torch.__version__, "rows": rows,
        "paired_diff_bf16_minus_float32": ci.mean, "paired_diff_ci95_half_width": ci.half_width,
        "sampling_noise_sd": noise_sd, "bf16_inside_sampling_noise": bool(inside),
        "verdict": ("bf16 sampling moves the distance by less than the sampling noise: safe to use" if inside else
                    "bf16 sampling moves the distance by as much as the sampling noise or more: keep float32"),
    }
    write_json(args.out, result)
    print(f"{metric}: bf16 − float32 = {ci.mean:+.4f} ± {ci.half_width:.4f} (95%, {len(rows)} noise seeds); "
          f"sampling noise SD {noise_sd:.4f}: {result['verdict']}")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
