"""Stage `train`: train one variant (agm.variants) for one seed, logging with dvclive.

Variants share this one script: ``baseline`` (λ = 0, no V), ``agm``, and the controls ``no_detach``,
``time_only`` (with ``--time-weights``, an AGM run's per-t weights), ``action_matching`` and ``shuffled``.
Resume state is not a DVC output: it lives in a folder keyed by the run's identity (configuration, data
hash, code hash, library versions) under ``$AGM_STATE_DIR`` or ``.agm_state/`` (agm.training.run_state), locked
while this stage trains, so a killed run resumes, another identity never does, and DVC's run-cache can
save and restore the outputs. With `execution.nproc` = N > 1 the stage validates its inputs and reruns
itself as N processes (torchrun on this node); under torchrun (that one, or a multi-node job's) the
processes split each batch (DDP) and rank 0 alone logs and writes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agm.config.device import resolve_device
from agm.config.errors import ParamsError
from agm.config.params import Params, load_params
from agm.io.atomic import atomic_dir, write_json
from agm.io.data import check_batch_size, load_image_set
from agm.io.provenance import code_digest, file_sha256
from agm.math.nets import count_parameters
from agm.math.time_bins import TimeWeightTable
from agm.training.distributed import close_process_group, init_process_group, launch, launched_processes
from agm.training.execution import amp_warning, apply_execution, configure_backends
from agm.training.loop import train
from agm.training.run_state import library_versions, locked, state_dir, state_root
from agm.variants import VARIANTS, Variant, save_run
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--variant", required=True, choices=list(VARIANTS))
    ap.add_argument("--seed", required=True, type=int, help="training seed (one of params `seeds`)")
    ap.add_argument("--data", required=True, help="training ImageSet .npz")
    ap.add_argument("--out", required=True, help="output folder: model.pt, snapshots/, time_weights.json")
    ap.add_argument("--live", required=True, help="dvclive folder")
    ap.add_argument("--time-weights", help="time_only: the AGM run's time_weights.json")
    args = ap.parse_args()
    variant = VARIANTS[args.variant]
    if args.seed < 0:
        raise ParamsError(f"--seed must be >= 0, got {args.seed}")
    if variant.needs_time_table and not args.time_weights:
        ap.error(f"--variant {args.variant} needs --time-weights (an AGM run's time_weights.json)")
    if variant.single_process and launched_processes() > 1:
        raise ParamsError(f"the {args.variant} variant runs in one process (its row in agm.variants is "
                          "single_process); run it without torchrun")
    params = load_params(args.params, (*variant.sections, "execution"))
    execution = params.execution
    table = TimeWeightTable.load(args.time_weights) if variant.needs_time_table else None
    data = load_image_set(args.data)
    check_batch_size(data, params.train.batch_size)
    params.model.check_resolution(data.images.shape[2])
    channels, resolution = data.images.shape[1], data.images.shape[2]
    device = resolve_device(execution.device)
    identity = stage_identity(variant, params, args.seed, args.data, len(data.images), channels, resolution,
                              device.type, table)
    name = f"train[{args.variant}, seed {args.seed}]"
    state = state_dir(state_root(), f"{args.variant}-s{args.seed}", identity)
    if note := variant.note(params):
        print(f"{name}: {note}")
    nproc = execution.nproc
    if variant.single_process and nproc > 1:  # see the refusal above
        print(f"{args.variant}: trains in one process (execution.nproc {nproc} applies to the other variants)")
        nproc = 1
    with contextlib.ExitStack() as stack:
        if launched_processes() == 1:  # under torchrun, the process that started it holds the lock
            stack.enter_context(locked(state, on_wait=lambda lock: print(
                f"{name}: waiting for {lock}: another process trains this run", flush=True)))
        if (status := launch(nproc, "stages.train", sys.argv[1:])) is not None:
            sys.exit(status)
        train_and_write(args, variant, params, identity, state, name, device, data.images, table)


def stage_identity(variant: Variant, params: Params, seed: int, data_path: str, n_images: int, channels: int,
                   resolution: int, device_type: str, table: TimeWeightTable | None) -> dict[str, Any]:
    """The run's identity: what changes its result, nothing of how it executes (agm.training.run_state keys the
    resume state by it): the variant's configuration, the data's content hash, this stage's code and the
    libraries' versions. tools.train_stacked trains into the same state folders by it."""
    return {**variant.identity(params, seed, channels, resolution, device_type, table),
            "data": {"n": n_images, "sha256": file_sha256(data_path)},
            "code": code_digest("stages.train"), "versions": library_versions(device_type)}


def train_and_write(args: argparse.Namespace, variant: Variant, params: Params, identity: dict[str, Any],
                    state: Path, name: str, device: torch.device, images: np.ndarray,
                    table: TimeWeightTable | None) -> None:
    """Train in this process (the only one, or one of torchrun's); rank 0 logs and writes the outputs."""
    execution = params.execution
    rank = init_process_group(device)
    built = variant.build(params, args.seed, images.shape[1], images.shape[2], device, table)
    trainer = built.trainer
    n_f, n_v = count_parameters(trainer.f), count_parameters(trainer.V) if trainer.V is not None else 0
    if rank == 0:
        print(f"{name}: f {n_f / 1e6:.2f}M params, V {n_v / 1e6:.3f}M, {device}, state {state}")
        write_json(state / "identity.json", identity)  # for a reader of the state folder
    if rank == 0 and (warning := amp_warning(device, params.train.amp)):
        print(f"{name}: warning: {warning}", file=sys.stderr)
    applied = configure_backends(device)
    applied += apply_execution(trainer, compile=execution.compile, channels_last=execution.channels_last,
                          distributed=launched_processes() > 1)
    if rank == 0 and applied:
        print(f"{name}: {', '.join(applied)}")
    loop = dict(steps=params.train.steps, batch_size=params.train.batch_size, seed=args.seed,
                checkpoint_dir=state, config=identity, checkpoint_every=execution.checkpoint_every,
                log_every=execution.log_every, snapshot_every=params.train.snapshot_every)
    x = torch.from_numpy(images).to(device)
    if rank > 0:  # the other ranks train their slice of every batch; rank 0 logs and writes
        train(trainer, x, **loop)
        close_process_group()
        return

    from dvclive import Live

    keys = variant.logged
    with Live(dir=args.live, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def on_log(step: int, record: dict[str, float]) -> None:
            live.step = step
            for key in keys:
                live.log_metric(f"train/{key}", record[key])

        result = train(trainer, x, on_log=on_log, progress=True, **loop)
        live.summary.update(steps=result.step, wall_time_s=round(result.wall_time_s, 2),
                            resumed_from_step=result.resumed_from, params_f=n_f, params_V=n_v)
    close_process_group()
    with atomic_dir(args.out) as out:
        save_run(out, built, result.step, state)
    print(f"{name}: {result.step} steps, final {keys[0]} {result.history[-1][keys[0]]:.4f}, "
          f"{result.wall_time_s:.0f} s this run")


if __name__ == "__main__":
    run(main)
