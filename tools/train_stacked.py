"""Train several seeds of one variant in one process, stacked (agm.training.stacked), into the train stage's state.

Each seed trains into the state folder its own `train` stage would use (the same identity: variant, params, data,
the train stage's code, library versions; agm.training.run_state), with the same checkpoints and EMA snapshots.
The train stages then find their runs finished: `dvc repro` (or `dvc exp run`) runs each `train_<variant>@<seed>`
in no steps, writes its outputs (model, snapshots, dvclive logs replayed from the checkpoint's history) and
records it in the run-cache as if it had trained there. A killed run resumes from its seeds' last checkpoint.

    python -m tools.train_stacked --params params.yaml --variant agm --seeds 0 1 2 --data data/prepared/train.npz
    dvc repro          # the train stages of those seeds finish at once; sampling and evaluation follow

On a GPU, stack as many seeds as fit (the default profile's networks are small: dozens at once). On a CPU a
stacked seed costs about what a lone one does (docs/benchmark.md, "Seeds per hour"). Variants: baseline, agm,
shuffled, time_only (with --time-weights, a pattern holding {seed}); no_detach and action_matching train alone.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from tqdm import tqdm

from agm.config.device import resolve_device
from agm.config.errors import ParamsError
from agm.config.params import load_params
from agm.io.data import check_batch_size, load_image_set
from agm.math.time_bins import TimeWeightTable
from agm.training.execution import configure_backends
from agm.training.run_state import locked, state_dir, state_root
from agm.training.stacked import stacked_from_state, train_stacked
from agm.variants import VARIANTS
from stages import run
from stages.train import stage_identity

STACKABLE = ("baseline", "agm", "shuffled", "time_only")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", required=True)
    ap.add_argument("--variant", required=True, choices=STACKABLE)
    ap.add_argument("--seeds", required=True, type=int, nargs="+")
    ap.add_argument("--data", required=True, help="training ImageSet .npz (the train stage's --data)")
    ap.add_argument("--time-weights", help="time_only: the AGM runs' tables, e.g. runs/agm/s{seed}/time_weights.json")
    args = ap.parse_args()
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ParamsError(f"--seeds must be distinct and >= 0, got {args.seeds}")
    variant = VARIANTS[args.variant]
    if variant.needs_time_table and (not args.time_weights or "{seed}" not in args.time_weights):
        ap.error("--variant time_only needs --time-weights with {seed} in it")
    params = load_params(args.params, (*variant.sections, "execution"))
    data = load_image_set(args.data)
    check_batch_size(data, params.train.batch_size)
    params.model.check_resolution(data.images.shape[2])
    channels, resolution = data.images.shape[1], data.images.shape[2]
    device = resolve_device(params.execution.device)
    tables = {s: TimeWeightTable.load(args.time_weights.format(seed=s)) if variant.needs_time_table else None
              for s in args.seeds}
    identities = [stage_identity(variant, params, s, args.data, len(data.images), channels, resolution, device.type,
                                 tables[s]) for s in args.seeds]
    folders = [state_dir(state_root(), f"{args.variant}-s{s}", ident) for s, ident in zip(args.seeds, identities)]
    steps = params.train.steps
    with contextlib.ExitStack() as stack:
        for folder in folders:
            stack.enter_context(locked(folder, on_wait=lambda lock: print(f"waiting for {lock}", flush=True)))
        trainers = [variant.build(params, s, channels, resolution, device, tables[s]).trainer for s in args.seeds]
        configure_backends(device)
        stacked = stacked_from_state(trainers, folders, identities, steps)
        print(f"train_stacked: {args.variant}, seeds {args.seeds} on {device}, from step {stacked.steps_done}; "
              f"state: {', '.join(str(f) for f in folders)}", flush=True)
        bar = tqdm(total=steps, initial=stacked.steps_done, desc="train (stacked)", unit="step", dynamic_ncols=True)
        last = [stacked.steps_done]

        def on_log(s: int, step: int, record: dict[str, float]) -> None:
            if s == 0 and step > last[0]:
                bar.update(step - last[0])
                last[0] = step
                bar.set_postfix(drift_loss=f"{record['drift_loss']:.4f}")

        images = torch.from_numpy(data.images).to(device)
        results = train_stacked(stacked, images, steps=steps, batch_size=params.train.batch_size, seeds=args.seeds,
                                checkpoint_dirs=folders, configs=identities,
                                checkpoint_every=params.execution.checkpoint_every,
                                log_every=params.execution.log_every, snapshot_every=params.train.snapshot_every,
                                on_log=on_log)
        bar.close()
    print(f"train_stacked: {len(args.seeds)} seeds at step {results[0].step} in {results[0].wall_time_s:.0f} s; "
          "`dvc repro` now finishes their train stages without training")


if __name__ == "__main__":
    run(main)
