"""Stage `steps`: the metric against training steps, from the EMA snapshots the trainer kept.

Each snapshot (and the final model) draws `eval.snapshot_samples` images at `sample.nfe` with the same
seed, so the points differ only by the weights, which are loaded in turn into one network. Written as a CSV for
`dvc plots` and the report. With `execution.nproc` > 1 the sample batches are shared among that many processes
(torchrun) and rank 0 scores them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agm.config.device import resolve_device
from agm.config.params import load_params
from agm.io.atomic import atomic_path
from agm.math.action_matching import ActionDrift
from agm.math.metrics.sample_quality import feature_extractor, load_real_features, sample_quality
from agm.models.files import image_shape, load_drift
from agm.models.samples import cpu_workers, gathered_samples, sampling_drift
from agm.training.checkpoints import load_checkpoint
from agm.training.distributed import close_process_group, init_process_group, launch
from agm.training.execution import configure_backends
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--seed", required=True, type=int, help="sampling seed (the run's training seed)")
    ap.add_argument("--run", required=True, help="the train stage's folder (model.pt, snapshots/)")
    ap.add_argument("--features", required=True)
    ap.add_argument("--out", required=True, help="CSV: step, distance, precision, recall")
    args = ap.parse_args()
    params = load_params(args.params, ["sample", "eval", "execution"])
    sample_params, eval_params = params.sample, params.eval
    space = eval_params.feature_space
    real = load_real_features(args.features, space, eval_params.inception_weights)
    run_dir = Path(args.run)
    final = load_checkpoint(run_dir / "model.pt")
    snaps = [load_checkpoint(snap) for snap in sorted((run_dir / "snapshots").glob("ema_*.pt"))]
    points = [(ck["step"], ck["ema"]) for ck in snaps if ck["step"] < final["step"]] + [(final["step"], final["ema"])]
    if (status := launch(params.execution.nproc, "stages.steps", sys.argv[1:])) is not None:
        sys.exit(status)
    device = resolve_device(params.execution.device)
    rank = init_process_group(device)
    configure_backends(device)
    if rank == 0:
        extract = feature_extractor(space, feature_net=Path(args.features) / "net.pt",
                                    inception_weights=eval_params.inception_weights, device=device,
                                    batch_size=eval_params.batch_size)
    shape, n, batch_size = image_shape(final), eval_params.snapshot_samples, sample_params.batch_size
    rows, workers = [], cpu_workers(device)
    net = load_drift(run_dir / "model.pt", device)  # one module: each snapshot's weights are loaded into it
    f = sampling_drift(net, device, amp=sample_params.amp, channels_last=sample_params.channels_last,
                       compile=sample_params.compile)
    for step, state in points:
        (net.s if isinstance(net, ActionDrift) else net).load_state_dict(state)
        images = [x for _, x in gathered_samples(f, n, batch_size, shape, sample_params.nfe, sample_params.g,
                                                 args.seed, device, workers)]  # rank 0 holds them all; the others none
        if rank == 0:
            q = sample_quality(real.features, extract(np.concatenate(images)), k=eval_params.k)
            rows.append({"step": step, **q.record(space, ndigits=None)})  # unrounded: the CSV writes 5 digits
            print(f"steps: step {step}: {rows[-1]}")
    close_process_group()
    if rank == 0:
        with atomic_path(args.out) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.5g")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    run(main)
