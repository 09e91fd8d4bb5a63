"""Trained seeds per hour on this machine: the ways of training many seeds, measured side by side in one run.

Each configuration trains the params file's networks with the real training loop (agm.training.loop.train for
one seed, agm.training.stacked.train_stacked for stacked seeds) on the real training set, for ``--steps`` timed
steps after ``--warmup`` untimed ones, in fresh processes:

- ``lone``: one seed per process on every core (a `train` stage today), the reference;
- ``lone x P``: P one-seed processes side by side, one thread each (P = the number of cores);
- ``stacked S``: S seeds stacked in one process on every core (agm.training.stacked);
- ``stacked S x P``: P such processes side by side, one thread each;
- ``lone bf16``: one seed with ``train.amp: bf16`` (a different computation: listed, not an equivalent);
- ``lone (again)``: the reference once more, closing the round.

Throughput is seed-steps per second (seeds × steps / wall time of the slowest process); ``factor`` is a
configuration's over the same round's ``lone`` (the mean of the two lone runs that open and close the round).
Every configuration runs once per round, ``--repeats`` rounds in one invocation: timings on a shared machine move
by tens of percent between minutes, so each factor is read within its round, reported per round and as the median.

    python -m tools.seeds_per_hour --params params.yaml --data data/prepared/train.npz --variant agm \
        --stacked 2 4 8 --out bench/seeds_per_hour.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from agm.config.device import resolve_device
from agm.config.params import Params, load_params
from agm.io.atomic import write_json
from agm.io.data import load_image_set
from agm.training.loop import train
from agm.training.peak_flops import device_name
from agm.training.stacked import StackedTrainer, train_stacked
from agm.variants import VARIANTS


def time_training(params: Params, images: torch.Tensor, variant: str, seeds: int, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` steps of ``seeds`` seeds (0, 1, ...) of ``variant`` trained together (stacked when more
    than one; lone through agm.training.loop.train otherwise) on ``images`` (uint8 (N, C, H, W) on the device),
    after ``warmup`` untimed steps."""
    device = images.device
    c, r = images.shape[1], images.shape[2]
    ids = list(range(seeds))
    trainers = [VARIANTS[variant].build(params, s, c, r, device, None).trainer for s in ids]
    stacked = StackedTrainer(trainers) if seeds > 1 else None
    batch, big = params.train.batch_size, 10**9
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / str(s) for s in ids]

        def run(n: int) -> float:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            if stacked is None:
                train(trainers[0], images, steps=n, batch_size=batch, seed=0, checkpoint_dir=dirs[0], config={},
                      checkpoint_every=big, log_every=big)
            else:
                train_stacked(stacked, images, steps=n, batch_size=batch, seeds=ids, checkpoint_dirs=dirs,
                              configs=[{}] * seeds, checkpoint_every=big, log_every=big)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        run(warmup)
        for d in dirs:  # the warm-up's last step wrote latest.pt: the timed run starts again at step 0
            (d / "latest.pt").unlink()
        if stacked is not None:
            stacked.steps_done = stacked.ema_updates = 0
        return run(steps)


def worker(args: argparse.Namespace) -> None:
    """One configuration in this process: print the timed seconds as JSON."""
    params = load_params(args.params, (*VARIANTS[args.variant].sections, "execution"))
    if args.amp:
        params = dataclasses.replace(params, train=dataclasses.replace(params.train, amp=args.amp))
    device = resolve_device(params.execution.device)
    images = torch.from_numpy(load_image_set(args.data).images).to(device)
    print(json.dumps({"seconds": time_training(params, images, args.variant, args.seeds, args.steps, args.warmup)}))


def _launch(args: argparse.Namespace, seeds: int, threads: int, amp: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tools.seeds_per_hour", "--worker", "--params", args.params, "--data", args.data,
           "--variant", args.variant, "--seeds", str(seeds), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if amp:
        cmd += ["--amp", amp]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def measure(args: argparse.Namespace, name: str, seeds: int, procs: int, threads: int,
            amp: str | None = None) -> dict:
    t0 = time.perf_counter()
    running = [_launch(args, seeds, threads, amp) for _ in range(procs)]
    outs = [p.communicate()[0] for p in running]
    if any(p.returncode for p in running):
        raise SystemExit(f"seeds_per_hour: {name} failed")
    seconds = max(json.loads(o.strip().splitlines()[-1])["seconds"] for o in outs)
    return {"config": name, "seeds_per_process": seeds, "processes": procs, "threads_per_process": threads,
            "amp": amp or "params", "timed_steps": args.steps, "seconds": round(seconds, 3),
            "seed_steps_per_s": round(seeds * procs * args.steps / seconds, 3),
            "wall_with_start_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", required=True)
    ap.add_argument("--data", required=True, help="training ImageSet .npz")
    ap.add_argument("--variant", default="agm", choices=("baseline", "agm", "shuffled"))
    ap.add_argument("--stacked", type=int, nargs="*", default=[2, 4, 8], help="stack sizes to measure")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="rounds of every configuration (factors per round)")
    ap.add_argument("--out")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seeds", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--amp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    cores = torch.get_num_threads()
    configs = [("lone", 1, 1, cores, None), (f"lone x {cores}", 1, cores, 1, None)]
    for size in args.stacked:
        configs += [(f"stacked {size}", size, 1, cores, None), (f"stacked {size} x {cores}", size, cores, 1, None)]
    configs += [("lone bf16", 1, 1, cores, "bf16"), ("lone (again)", 1, 1, cores, None)]
    rounds = []
    for r in range(args.repeats):  # whole rounds, so a slow spell of the machine hits every configuration alike
        rows = [measure(args, *config) for config in configs]
        ref = (rows[0]["seed_steps_per_s"] + rows[-1]["seed_steps_per_s"]) / 2  # lone at the round's two ends
        for row in rows:
            row["factor"] = round(row["seed_steps_per_s"] / ref, 3)
            print(f"round {r + 1}: {row['config']:>18}: {row['seed_steps_per_s']:8.2f} seed-steps/s  "
                  f"x{row['factor']:.2f}", flush=True)
        rounds.append(rows)
    summary = [{"config": rows[0]["config"], "factors": [rnd[i]["factor"] for rnd in rounds],
                "median_factor": round(statistics.median(rnd[i]["factor"] for rnd in rounds), 3)}
               for i, rows in enumerate(zip(*rounds))]
    for row in summary:
        print(f"{row['config']:>18}: factor over lone {row['median_factor']:.2f} (rounds: {row['factors']})")
    result = {"variant": args.variant, "params": args.params, "cores": cores, "torch": torch.__version__,
              "cpu": device_name(torch.device("cpu")), "timed_steps": args.steps, "summary": summary,
              "rounds": rounds}
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
