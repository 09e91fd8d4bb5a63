"""``correctness``: bf16 against float32 losses over the same first steps (stated tolerance); a short bf16 training
on structured images whose loss must fall."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import build_trainer, device_for, perf_params, write_part


def section_correctness(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch
    from paper_inputs import synthetic_images

    from agm.io.data import to_model_range
    from agm.training.execution import configure_backends

    device = device_for(args.dry_run)
    configure_backends(device)
    path = perf_params(args.dry_run, tmp)
    batch_size = 8 if args.dry_run else 128
    compare_steps = 3 if args.dry_run else 10
    train_steps = 30 if args.dry_run else 200
    amp = "bf16"
    params, shape, _ = build_trainer(path, "agm", torch.device("cpu"), amp="none")
    images = synthetic_images(512 if not args.dry_run else 64, size=shape[1])
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()[:, : shape[0]].to(device)

    def batches(n: int, seed: int):
        gen = torch.Generator(device=device).manual_seed(seed)
        bshape = (batch_size, *shape)
        for _ in range(n):
            idx = torch.randint(len(data), (batch_size,), generator=gen, device=device)
            x0, eps, z = (torch.randn(bshape, generator=gen, device=device) for _ in range(3))
            t = torch.rand(batch_size, generator=gen, device=device)
            yield to_model_range(data[idx]), x0, eps, t, z

    # bf16 against float32: the same initial weights (same seed) and the same batches
    losses: dict[str, list[dict[str, float]]] = {}
    for name in ("none", amp):
        _, _, trainer = build_trainer(path, "agm", device, amp=name)
        losses[name] = [{k: float(v) for k, v in dataclasses.asdict(trainer.step(*b)).items()}
                        for b in batches(compare_steps, seed=1)]
    tol = 0.05
    rel = [abs(b["drift_loss"] - f["drift_loss"]) / abs(f["drift_loss"]) for f, b in zip(losses["none"], losses[amp])]
    rel_v = [abs(b["potential_loss"] - f["potential_loss"]) / max(abs(f["potential_loss"]), 1e-3)
             for f, b in zip(losses["none"], losses[amp])]
    out: dict[str, Any] = {
        "bf16_vs_fp32": {
            "steps": compare_steps, "batch_size": batch_size, "fp32": losses["none"], "bf16": losses[amp],
            "max_rel_diff_drift_loss": max(rel), "max_rel_diff_potential_loss": max(rel_v),
            "tolerance": tol,
            "tolerance_reason": ("bf16 keeps 8 significand bits (unit roundoff 2^-8 = 0.0039); the loss is a mean over "
                                 "the batch of outputs of a ~40-layer network whose rounding errors add up, and the "
                                 "two runs' weights drift apart with every step: 5% relative is about 13 unit "
                                 "roundoffs, far below the loss's own change over the first steps"),
            "passed": max(rel) <= tol,
        }
    }
    write_part(args, out)
    print(f"correctness bf16 vs fp32: max relative drift-loss difference {max(rel):.4f} (tolerance {tol})", flush=True)
    # a short bf16 training on structured images: the drift loss must fall
    _, _, trainer = build_trainer(path, "agm", device, amp=amp)
    t0 = time.perf_counter()
    hist = [float(trainer.step(*b).drift_loss) for b in batches(train_steps, seed=2)]
    k = max(train_steps // 10, 1)
    first, last = float(np.mean(hist[:k])), float(np.mean(hist[-k:]))
    out["bf16_training"] = {
        "steps": train_steps, "batch_size": batch_size, "seconds": time.perf_counter() - t0,
        "mean_drift_loss_first_10pct": first, "mean_drift_loss_last_10pct": last, "all_finite": bool(
            np.isfinite(hist).all()), "drift_loss_every_10": hist[::10],
        "passed": bool(np.isfinite(hist).all() and last < 0.9 * first),
        "criterion": "all losses finite and the mean of the last 10% of steps below 0.9 x the mean of the first 10%",
    }
    print(f"correctness bf16 training: drift loss {first:.4f} -> {last:.4f} over {train_steps} steps", flush=True)
    out["passed"] = out["bf16_vs_fp32"]["passed"] and out["bf16_training"]["passed"]
    return out
