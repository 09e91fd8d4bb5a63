"""Shared helpers, run inside a section's process: the profiles' paths, the device, the speed sections' params file
and trainer, a training benchmark as JSON, a section's result for the driver, and the pipeline's own stages run as
dvc.yaml writes them."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.pipeline import read_params, stage_commands, stage_env, write_params

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "profiles" / "paper.yaml"
DEFAULT = ROOT / "params.yaml"
TINY = ROOT / "tests" / "tiny_params.yaml"
PAPER_IMAGES_PER_S = 500_000 * 128 / (36 * 3600)
"""The paper's training throughput: 500k steps at batch 128 in about 36 h on one RTX 4090 (~494 images/s)."""
PAPER_STEPS = 500_000


def device_for(dry_run: bool):
    import torch

    if dry_run:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible to torch (use --dry-run on a CPU)")
    return torch.device("cuda")


def perf_params(dry_run: bool, tmp: Path, **overrides: Any) -> Path:
    """The params file of the speed sections: the paper profile's networks (tiny ones in a dry run)."""
    if dry_run:
        tree = read_params(TINY)
        overrides = {"data.channels": 3, **overrides}
    else:
        tree = read_params(PAPER)
    return write_params(tree, tmp / "perf_params.yaml", overrides)


def build_trainer(params_path: Path, variant: str, device, *, amp: str, seed: int = 0):
    import dataclasses as dc

    from agm.config.params import load_params
    from agm.variants import VARIANTS, build_run

    params = load_params(params_path, ["seeds", "data", "sample", *VARIANTS["agm"].sections])
    params = dc.replace(params, train=dc.replace(params.train, amp=amp))
    shape = (params.data.channels, params.data.resolution, params.data.resolution)
    return params, shape, build_run(params, variant, seed, shape[0], shape[1], device).trainer


def train_record(result: Any, flops_per_image: float | None = None) -> dict[str, Any]:
    """A training benchmark as JSON; with ``flops_per_image`` (the model's cost counted once, on its eager NCHW
    trainer) the achieved FLOP/s and peak fraction use that count, whatever layout or compilation ran."""
    r = dataclasses.asdict(result)
    if flops_per_image is not None:
        counted = r["flops_per_image"]
        r["flops_per_image_counted_in_this_mode"] = counted
        r["flops_per_image"] = flops_per_image
        r["achieved_flops_per_s"] = flops_per_image * r["images_per_s"]
        if r["peak_fraction"] is not None:
            r["peak_fraction"] *= flops_per_image / counted
    r["step_time_ms"] = 1e3 * r["step_time_s"]
    r["achieved_tflops"] = r["achieved_flops_per_s"] / 1e12
    r["peak_memory_gib"] = r["peak_memory_bytes"] / 2**30
    r["projected_hours_500k_steps"] = r["step_time_s"] * PAPER_STEPS / 3600
    r["vs_paper_images_per_s"] = r["images_per_s"] / PAPER_IMAGES_PER_S
    return r


def write_part(args: argparse.Namespace, result: dict[str, Any], **extra: Any) -> None:
    """Write a section's result for the driver (atomically: a kill never leaves half a file)."""
    tmp = Path(args.part + ".tmp")
    tmp.write_text(json.dumps({"result": result, **extra}, default=str))
    tmp.replace(args.part)


# --- the pipeline's own stages, as dvc.yaml writes them


def run_stages(names: list[str], workdir: Path, log_prefix: str = "",
               on_stage: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run the stages' commands in ``workdir`` (which holds params.yaml) one after another; stop at a failure."""
    env = stage_env()
    records = []
    for name, cmd in stage_commands(names).items():
        t0 = time.perf_counter()
        res = subprocess.run(cmd, shell=True, cwd=workdir, env=env, capture_output=True, text=True)
        rec = {"stage": name, "returncode": res.returncode, "seconds": round(time.perf_counter() - t0, 2)}
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        print(f"{log_prefix}{name}: rc {res.returncode} in {rec['seconds']} s | " + " | ".join(tail), flush=True)
        if res.returncode:
            rec["output_tail"] = (res.stdout + res.stderr)[-2000:]
            records.append(rec)
            break
        records.append(rec)
        if on_stage is not None:
            on_stage(records)
    return records
