"""Training speed.

``train``: paper-profile networks (profiles/paper.yaml), batch 128, 64x64x3 random data: baseline and AGM steps in
bf16 autocast, eager and eager + channels_last; ``train_compiled``: torch.compile (with channels_last where it was
faster eagerly). Step time, images/s, FLOPs, achieved TFLOP/s and fraction of the dense bf16 peak
(agm.training.peak_flops), peak memory, host syncs per step, projected hours for 500k steps beside the paper's ~494
images/s (agm.training.throughput does the measuring).

``stacked_seeds``: the default profile's AGM trained as S seeds stacked in one process (agm.training.stacked;
S = 1, 8, 32, 64 while the cap allows): seed-steps per second and the factor over one seed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .common import DEFAULT, PAPER_IMAGES_PER_S, TINY, build_trainer, device_for, perf_params, train_record, write_part


def _bench_modes(args: argparse.Namespace, tmp: Path, modes: list[dict[str, bool]]) -> dict[str, Any]:
    import torch

    from agm.training.execution import apply_execution, configure_backends
    from agm.training.throughput import bench_train, random_batch, step_flops

    device = device_for(args.dry_run)
    applied = configure_backends(device)
    cost: dict[str, float] = {}
    amp = "none" if args.dry_run else "bf16"
    batch_size = 4 if args.dry_run else 128
    warmup, steps = (1, 2) if args.dry_run else (3, 15)
    path = perf_params(args.dry_run, tmp)
    out: dict[str, Any] = {"batch_size": batch_size, "amp": amp, "backends": applied, "warmup_steps": warmup,
                           "timed_steps": steps, "paper_images_per_s": PAPER_IMAGES_PER_S, "runs": []}
    for mode in modes:
        for variant in ("baseline", "agm"):
            params, shape, trainer = build_trainer(path, variant, device, amp=amp)
            batch = random_batch(batch_size, shape, seed=0, device=device)
            if variant not in cost:  # the model's cost: one count, on the eager NCHW trainer, for every mode
                cost[variant] = step_flops(trainer, batch) / batch_size
            t0 = time.perf_counter()
            notes = apply_execution(trainer, compile=mode["compile"], channels_last=mode["channels_last"])
            rec = train_record(bench_train(trainer, batch, warmup=warmup, steps=steps), cost[variant])
            rec |= {"variant": variant, **mode, "applied": notes, "image_shape": list(shape),
                    "wall_s_incl_warmup": time.perf_counter() - t0}
            out["runs"].append(rec)
            write_part(args, out)  # a section killed at its cap still reports the runs it finished
            print(f"train {variant} {mode}: {rec['step_time_ms']:.1f} ms/step, {rec['images_per_s']:.0f} img/s, "
                  f"{rec['achieved_tflops']:.1f} TFLOP/s, peak fraction {rec['peak_fraction']}, "
                  f"{rec['peak_memory_gib']:.2f} GiB, syncs {rec['host_syncs_per_step']}", flush=True)
            del trainer, batch
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def section_train(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out = _bench_modes(args, tmp, [{"compile": False, "channels_last": False},
                                   {"compile": False, "channels_last": True}])
    by = {(r["variant"], r["channels_last"]): r["step_time_s"] for r in out["runs"]}
    out["channels_last_helps"] = all(by[(v, True)] < by[(v, False)] for v in ("baseline", "agm"))
    return out


def section_train_compiled(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    return _bench_modes(args, tmp, [{"compile": True, "channels_last": bool(args.channels_last)}])


def section_stacked_seeds(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The default profile's AGM (its networks, batch and λ) as S seeds stacked on this device, S doubling-ish
    until the cap: seed-steps per second, and each S's factor over one seed."""
    import torch

    from agm.config.params import load_params
    from agm.training.execution import configure_backends
    from tools.seeds_per_hour import time_training

    device = device_for(args.dry_run)
    configure_backends(device)
    params = load_params(TINY if args.dry_run else DEFAULT, ["lambda", "bridge", "model", "potential", "train"])
    side = 16 if args.dry_run else 8
    gen = torch.Generator().manual_seed(0)  # speed does not depend on the images: random digits-sized ones
    images = torch.randint(0, 256, (1438, 1, side, side), generator=gen, dtype=torch.uint8).to(device)
    sizes, (warmup, steps) = ((1, 2), (1, 3)) if args.dry_run else ((1, 8, 32, 64), (5, 40))
    out: dict[str, Any] = {"variant": "agm", "batch_size": params.train.batch_size, "timed_steps": steps, "runs": []}
    for s in sizes:
        seconds = time_training(params, images, "agm", s, steps, warmup)
        run = {"seeds": s, "seconds": round(seconds, 3), "seed_steps_per_s": round(s * steps / seconds, 2)}
        run["factor"] = round(run["seed_steps_per_s"] / out["runs"][0]["seed_steps_per_s"], 2) if out["runs"] else 1.0
        if device.type == "cuda":
            run["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
        out["runs"].append(run)
        write_part(args, out)
        print(f"stacked_seeds: {s} seeds: {run['seed_steps_per_s']} seed-steps/s (x{run['factor']})", flush=True)
    out["passed"] = len(out["runs"]) == len(sizes)
    return out
