"""The paper setting measured on one GPU, in sections that each run in their own process under a time budget.

Run it through ``scripts/gpu_check.sh [--dry-run] --out DIR`` (which puts the repository on PYTHONPATH and,
where dvclive or clean-fid is missing, installs the wheels carried in ``.whl/``). Sections, in order:

1. ``env``        GPU name and memory, driver, CUDA, cuDNN, torch, Triton, bf16 support.
   ``stacked_seeds`` the default profile's AGM trained as S seeds stacked in one process (agm.training.stacked;
                  S = 1, 8, 32, 64 while the cap allows): seed-steps per second and the factor over one seed.
   ``converged_study`` the powered study at the default profile's plateau (docs/results/converged): baseline, AGM
                  at λ = 0.1, 1, 3, 10 and the shuffled control at λ = 1, each arm's seeds trained stacked, then
                  sampled (10,000), evaluated and scored per snapshot by the pipeline's own stages, rows as they land.
2. ``train``      paper-profile networks (profiles/paper.yaml), batch 128, 64x64x3 random data: baseline and AGM
                  steps in bf16 autocast, eager and eager + channels_last; ``train_compiled``: torch.compile
                  (with channels_last where it was faster eagerly). Step time, images/s, FLOPs, achieved
                  TFLOP/s and fraction of the dense bf16 peak (agm.training.peak_flops), peak memory, host syncs
                  per step, projected hours for 500k steps beside the paper's ~494 images/s
                  (agm.training.throughput does the measuring).
3. ``sample``     Euler-Maruyama with the EMA drift (float32 as stages/sample.py runs it, and bf16 autocast):
                  the largest batch that fits, images/s, projected minutes for 10k samples at NFE 500.
   ``attention``  scaled_dot_product_attention on the U-Net's transposed q/k/v views against contiguous copies.
4. ``correctness`` bf16 against float32 losses over the same first steps (stated tolerance); a short bf16
                  training on structured images whose loss must fall.
   ``stages``     the paper-path stages (prepare, features with a stand-in Inception, train baseline and AGM,
                  sample, evaluate), at the slow test's tiny sizes, run as dvc.yaml writes them, on this device.
5. ``extra_seeds`` if the budget has time left: the default profile's arms of the power study (baseline, AGM at
                  λ = 0.1 and 1, the shuffled control at λ = 1; ``--arms``) for extra seeds, trained, sampled
                  (10,000 samples each) and evaluated, as rows (extra_seeds.csv) plus the samples (one
                  extra_seeds_<arm>.npz per arm) for the power study.
6. ``no_detach``  the paper's stop-gradient claim (§4.4: without it training collapses within 20k steps): the
                  default profile's AGM and its no-stop-gradient control side by side for 3 seeds (``--first-seed``)
                  to 20,000 steps or the budget's end, their loss curves (no_detach_curves.csv) and the report's
                  collapse rule applied to each seed's curves as far as they got (a dry run: one seed).

Every section's result is merged into DIR/gpu_check.json and DIR/gpu_check.md as soon as it finishes, so a run
cut short still returns what it measured; DIR/gpu_check.log holds every section's output. ``--dry-run`` runs the
same code on the CPU with tests/tiny_params.yaml networks and tiny sizes, in a few minutes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tools.converged_study import CONVERGED_STEPS, STUDY_ARMS, study_overrides
from tools.pipeline import arm as _arm
from tools.pipeline import chain, read_metrics, read_params, stage_commands, stage_env, write_params

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "profiles" / "paper.yaml"
DEFAULT = ROOT / "params.yaml"
TINY = ROOT / "tests" / "tiny_params.yaml"
PAPER_IMAGES_PER_S = 500_000 * 128 / (36 * 3600)
"""The paper's training throughput: 500k steps at batch 128 in about 36 h on one RTX 4090 (~494 images/s)."""
PAPER_STEPS = 500_000

OUT_OF_BUDGET = "out of budget"
"""A section stopped at its cap: its result holds what it finished; on a GPU not a failure of the code."""

# (name, wall-clock cap in seconds on a GPU, cap in a dry run): the order they run in
SECTIONS: tuple[tuple[str, float, float], ...] = (
    ("env", 60, 60),
    ("stacked_seeds", 90, 150),
    ("converged_study", 330, 360),
    ("sample_precision", 60, 120),
    ("train", 100, 150),
    ("train_compiled", 150, 400),
    ("sample", 150, 120),
    ("attention", 45, 60),
    ("correctness", 150, 120),
    ("stages", 150, 300),
    ("extra_seeds", 600, 240),
    ("no_detach", 540, 240),
)


# ---------------------------------------------------------------------------------------------------------
# shared helpers (run inside a section's process)


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


# ---------------------------------------------------------------------------------------------------------
# sections: each takes (args, tmp) and returns a JSON-able dict


def section_env(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(), "numpy": np.__version__,
        "machine": platform.machine(),
    }
    for mod in ("triton", "torchvision", "dvclive", "cleanfid", "dvc"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "importable")
        except Exception as exc:  # reported, not fatal: the sections that need it say so
            out[mod] = f"not importable ({type(exc).__name__}: {exc})"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out |= {"gpu": torch.cuda.get_device_name(0), "gpu_memory_gib": props.total_memory / 2**30,
                "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                "bf16_supported": torch.cuda.is_bf16_supported(), "gpu_count": torch.cuda.device_count()}
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,memory.total,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            out["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            out["nvidia_smi"] = f"failed: {exc}"
    from agm.training.peak_flops import device_name, device_peak_flops

    device = device_for(args.dry_run)
    out["device"] = str(device)
    out["device_name"] = device_name(device)
    out["dense_bf16_peak_tflops"] = (p / 1e12 if (p := device_peak_flops(device, torch.bfloat16)) else None)
    return out


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


SAMPLE_MODES = (
    ("float32, transposed attention (before)", {"amp": "none"}, True),
    ("float32", {"amp": "none"}, False),
    ("bf16", {"amp": "bf16"}, False),
    ("bf16, channels_last, compiled", {"amp": "bf16", "channels_last": True, "compile": True}, False),
)
"""The sampling A/B: (name, agm.models.samples.sampling_drift options, whether SelfAttention runs the old transposed
q/k/v layout). The first is the sample stage as it was measured at 59 min per 10k images on an H200."""


def _transposed_attention_forward(self, x, emb=None):
    """SelfAttention.forward as it was: q, k, v as transposed views (last-dimension stride HW: the unfused kernel)."""
    import torch.nn.functional as F

    b, c, h, w = x.shape
    qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
    q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def section_sample(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Sampling the paper U-Net: the largest batch that fits (float32, one drift evaluation per candidate), then
    each of :data:`SAMPLE_MODES` at that batch (and the smallest), timed over a few NFE and projected to 10,000
    images at NFE 500, with its peak memory."""
    import torch

    from agm.math.nets.unet import SelfAttention
    from agm.math.solver import euler_maruyama
    from agm.models.samples import sampling_drift
    from agm.training.execution import configure_backends
    from agm.training.throughput import synchronize

    device = device_for(args.dry_run)
    configure_backends(device)
    _, shape, trainer = build_trainer(perf_params(args.dry_run, tmp), "agm", device, amp="none")
    net = trainer.ema.model.eval().requires_grad_(False)
    g, nfe_paper, n_paper = 0.01, 500, 10_000
    candidates = [2, 4, 8] if args.dry_run else [500, 1000, 2000, 4000, 8000]
    timed_nfe = 2 if args.dry_run else 5
    new_forward = SelfAttention.forward

    def run(drift, batch: int, nfe: int) -> float:
        gen = torch.Generator(device=device).manual_seed(0)
        synchronize(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            euler_maruyama(drift, (batch, *shape), nfe, g, gen, device)
        synchronize(device)
        return time.perf_counter() - t0

    out: dict[str, Any] = {"image_shape": list(shape), "timed_nfe": timed_nfe, "g": g, "probe": [], "runs": []}
    fits = []
    run(net, candidates[0], 1)  # cuDNN autotuning and lazy initialisation, so the probe below times the work
    for batch in candidates:  # one drift evaluation per candidate, float32, the fused attention layout
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = run(net, batch, 1)
            mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            out["probe"].append({"batch": batch, "fits": True, "one_nfe_s": seconds, "peak_memory_gib": mem})
            fits.append(batch)
            print(f"sample probe batch {batch}: fits, {seconds:.3f} s for one NFE, {mem} GiB", flush=True)
            if seconds > 1.5:  # the next, twice as large, would eat the section's minute
                break
        except torch.cuda.OutOfMemoryError:
            out["probe"].append({"batch": batch, "fits": False})
            print(f"sample probe batch {batch}: out of memory", flush=True)
            torch.cuda.empty_cache()
            break
    out["largest_batch_that_fits"] = max(fits)
    for batch in sorted({min(fits), max(fits)}, reverse=True):
        for name, options, transposed in SAMPLE_MODES:
            SelfAttention.forward = _transposed_attention_forward if transposed else new_forward
            if args.dry_run and options.get("compile"):  # inductor's CPU build takes minutes: compiled on a GPU
                options, name = {**options, "compile": False}, name.replace("compiled", "not compiled (dry run)")
            try:
                drift = sampling_drift(net, device, **options)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                run(drift, batch, 1)  # warm-up: compilation, cuDNN autotuning for this shape
                warm = time.perf_counter() - t0
                seconds = run(drift, batch, timed_nfe)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                out["runs"].append({"batch": batch, "mode": name, "fits": False})
                print(f"sample batch {batch} {name}: out of memory", flush=True)
                continue
            finally:
                SelfAttention.forward = new_forward
                net.to(memory_format=torch.contiguous_format)
            per_nfe = seconds / timed_nfe
            ips = batch / (per_nfe * nfe_paper)
            rec = {"batch": batch, "mode": name, **options, "transposed_attention": transposed, "fits": True,
                   "warmup_s": warm, "timed_nfe": timed_nfe, "seconds": seconds, "seconds_per_nfe": per_nfe,
                   "images_per_s_at_nfe_500": ips, "projected_minutes_10k_at_nfe_500": n_paper / ips / 60,
                   "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                                       if device.type == "cuda" else None)}
            out["runs"].append(rec)
            write_part(args, out)
            print(f"sample batch {batch} {name}: {per_nfe * 1e3:.1f} ms per NFE, {ips:.1f} img/s at NFE 500, "
                  f"{rec['projected_minutes_10k_at_nfe_500']:.1f} min for 10k, {rec['peak_memory_gib']} GiB",
                  flush=True)
            torch._dynamo.reset()
    done = [r for r in out["runs"] if r.get("fits")]
    out["fastest"] = min(done, key=lambda r: r["projected_minutes_10k_at_nfe_500"])["mode"] if done else None
    return out


def section_attention(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """scaled_dot_product_attention on q, k, v as transposed views (last-dimension stride HW, the layout the U-Net
    used to hand it) against contiguous ones: time and peak memory, float32 and bf16, at the paper U-Net's 32×32
    attention (4 heads of 64 channels) and the sampling batch; then the U-Net's SelfAttention itself with SDPA
    restricted to the fused kernels, which must run (the section fails where PyTorch refuses them)."""
    import torch
    import torch.nn.functional as F

    from agm.training.throughput import synchronize, time_per_call

    device = device_for(args.dry_run)
    batch, heads, tokens, dim = (4, 2, 16, 8) if args.dry_run else (500, 4, 1024, 64)
    out: dict[str, Any] = {"batch": batch, "heads": heads, "tokens": tokens, "head_dim": dim, "runs": []}
    for dtype in (torch.float32, torch.bfloat16):
        qkv = torch.randn(batch, 3, heads, dim, tokens, device=device, dtype=dtype)
        views = [qkv[:, i].transpose(-1, -2) for i in range(3)]  # (B, heads, HW, d), last-dim stride HW
        for layout, (q, k, v) in (("transposed views", views), ("contiguous", [x.contiguous() for x in views])):
            with torch.no_grad():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                seconds = time_per_call(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
                                        warmup=1, iters=3, device=device)
                synchronize(device)
                extra = ((torch.cuda.max_memory_allocated(device) - base) / 2**30) if device.type == "cuda" else None
            rec = {"dtype": str(dtype).removeprefix("torch."), "layout": layout, "ms": 1e3 * seconds,
                   "extra_peak_gib": extra, "last_dim_stride": q.stride(-1)}
            out["runs"].append(rec)
            print(f"attention {rec['dtype']} {layout}: {rec['ms']:.2f} ms, {extra} GiB above the inputs", flush=True)
    out["module"] = _attention_module_fused(device, batch, heads, tokens, dim)
    out["passed"] = all(r["fused"] for r in out["module"])
    return out


def _attention_module_fused(device, batch: int, heads: int, tokens: int, dim: int) -> list[dict[str, Any]]:
    """The U-Net's own SelfAttention, forward and (float32) backward, with scaled_dot_product_attention restricted
    to the fused kernels (flash, memory-efficient; the CPU has flash only): ``fused`` is false where PyTorch finds
    no fused kernel for the tensors the module hands it and refuses (it would fall back to the math path)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from agm.math.nets.unet import SelfAttention
    from agm.training.throughput import synchronize, time_per_call

    side = int(math.isqrt(tokens))
    fused = [SDPBackend.FLASH_ATTENTION] + ([SDPBackend.EFFICIENT_ATTENTION] if device.type == "cuda" else [])
    records = []
    for dtype in (torch.float32, torch.bfloat16):
        attn = SelfAttention(heads * dim, head_channels=dim, groups=min(32, heads * dim)).to(device)
        x = torch.randn(batch, heads * dim, side, side, device=device)
        rec: dict[str, Any] = {"dtype": str(dtype).removeprefix("torch."), "fused": True}
        try:
            with sdpa_kernel(fused), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                with torch.no_grad():
                    rec["forward_ms"] = 1e3 * time_per_call(lambda a=attn, x=x: a(x), warmup=1, iters=3, device=device)
                if dtype == torch.float32 or device.type == "cuda":  # training's forward + backward
                    xg = x.clone().requires_grad_(True)
                    attn(xg).sum().backward()
                    synchronize(device)
        except RuntimeError as exc:  # "No available kernel": the layout (or dtype) rules the fused kernels out
            rec |= {"fused": False, "error": str(exc).splitlines()[0][:300]}
        print(f"attention module {rec['dtype']}: fused kernel {'ran' if rec['fused'] else 'REFUSED'}", flush=True)
        records.append(rec)
    return records


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


def section_stages(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from paper_inputs import PAPER_TINY_SIZES, synthetic_images, write_image_folder, write_standin_inception

    work = tmp / "paper_stages"
    work.mkdir()
    inputs = tmp / "inputs"
    write_image_folder(inputs / "images", synthetic_images(80))
    weights = write_standin_inception(inputs / "inception")
    overrides = {**PAPER_TINY_SIZES, "data.source": "folder", "data.name": "", "data.path": str(inputs / "images"),
                 "eval.inception_weights": str(weights), "train.amp": "none" if args.dry_run else "bf16",
                 "execution.compile": False}  # compiling the 45M U-Net per stage would outlast the cap (train_compiled)
    if args.dry_run:
        overrides |= {"execution.device": "cpu"}
    write_params(read_params(PAPER), work / "params.yaml", overrides)
    names = ["source", "prepare", "features", "train_baseline@0", "train_agm@0", "sample@baseline-0", "sample@agm-0",
             "evaluate@baseline-0", "evaluate@agm-0"]
    records = run_stages(names, work, on_stage=lambda recs: write_part(args, {"stages": recs, "passed": False}))
    out: dict[str, Any] = {"stages": records, "overrides": overrides,
                           "passed": len(records) == len(names) and all(r["returncode"] == 0 for r in records)}
    if out["passed"]:
        out["metrics"] = {m: read_metrics(work, m, 0) for m in ("baseline", "agm")}
        finite = all(math.isfinite(v) for m in out["metrics"].values() for k, v in m.items()
                     if k in ("fid", "precision", "recall"))
        out["metrics_finite"] = finite
        out["metric_names"] = sorted(out["metrics"]["agm"])
        out["passed"] = finite and "fid" in out["metrics"]["agm"]
    return out


ARMS = ("baseline", "agm@0.1", "agm@1.0", "shuffled@1.0")
"""The powered study's arms (docs/results/power/): the baseline, AGM at the paper's λ and at the sweep's best, and the
shuffled control (AGM's weights permuted across the batch) at λ = 1. ``model@λ``: the variant at that ``lambda``."""


def section_extra_seeds(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Default-profile arms (:data:`ARMS`) for extra seeds, in parallel waves of seeds, until the budget ends.

    Each λ gets its own working folder (its own params.yaml), sharing one prepared dataset and one feature network,
    so every arm is scored in the same feature space; the baseline does not read λ and trains once.
    """
    deadline = time.monotonic() + args.section_budget
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 100)
    arms = args.arms
    wave = 1 if args.dry_run else max(1, 12 // len(arms))
    overrides: dict[str, Any] = {"sample.num_samples": 10_000}
    if args.dry_run:
        overrides = {"train.steps": 4, "train.batch_size": 32, "execution.log_every": 2,
                     "execution.checkpoint_every": 2, "train.snapshot_every": 0, "sample.num_samples": 64,
                     "sample.batch_size": 64, "sample.nfe": 2, "sample.grid_nfe": 2, "sample.grid_size": 4,
                     "eval.feature_net_epochs": 1, "execution.device": "cpu"}
    base = read_params(DEFAULT)
    setup_dir = tmp / "extra_seeds"
    setup_dir.mkdir()
    write_params(base, setup_dir / "params.yaml", overrides)
    setup = run_stages(["source", "prepare", "features"], setup_dir, "extra_seeds ")
    out: dict[str, Any] = {"first_seed": first_seed, "arms": list(arms), "overrides": overrides, "setup": setup,
                           "rows": [], "failures": [], "cut_by_budget": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    workdirs: dict[float, Path] = {}
    default_lambda = float(base["lambda"])
    for arm in arms:  # one folder per λ, each with the shared data/ (prepared images and feature network)
        lam = _arm(arm, default_lambda)[1]
        if lam not in workdirs:
            work = tmp / f"extra_seeds_lambda_{lam:g}"
            shutil.copytree(setup_dir, work)
            write_params(base, work / "params.yaml", {**overrides, "lambda": lam})
            workdirs[lam] = work
    rows_csv = Path(args.out) / "extra_seeds.csv"
    samples: dict[str, dict[str, np.ndarray]] = {arm: {} for arm in arms}
    seed, per_wave_s = first_seed, None
    env = stage_env(OMP_NUM_THREADS="2")
    while True:
        left = deadline - time.monotonic()
        if per_wave_s is not None and left < 1.2 * per_wave_s:
            break
        seeds = list(range(seed, seed + wave))
        seed += wave
        t0 = time.perf_counter()
        procs = []
        for s in seeds:  # one chain per (arm, seed): train -> sample -> evaluate
            for arm in arms:
                model, lam = _arm(arm, default_lambda)
                work = workdirs[lam]
                train = f"train_{model}@{s}" if model in ("baseline", "agm") else f"train_control@{model}-{s}"
                sample = f"sample@{model}-{s}" if model in ("baseline", "agm") else f"sample_control@{model}-{s}"
                evaluate = f"evaluate@{model}-{s}" if model in ("baseline", "agm") else f"evaluate_control@{model}-{s}"
                script = " && ".join(stage_commands([train, sample, evaluate]).values())
                log_path = tmp / f"extra_{arm}_{s}.log"
                log = open(log_path, "w")
                procs.append((arm, s, work, log, log_path, subprocess.Popen(
                    script, shell=True, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)))
        for arm, s, work, log, log_path, proc in procs:
            model, lam = _arm(arm, default_lambda)
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:  # the budget ended: not a failure of the chain
                proc.kill()
                proc.wait()
                log.close()
                out["cut_by_budget"].append({"arm": arm, "seed": s})
                continue
            log.close()
            if rc != 0:
                out["failures"].append({"arm": arm, "seed": s, "returncode": rc, "tail": log_path.read_text()[-1500:]})
                continue
            m = read_metrics(work, model, s)
            row = {"model": model, "lambda": 0.0 if model == "baseline" else lam, "seed": s,
                   "device": args.device_name, "profile": "default",
                   **{k: m[k] for k in m if k != "seconds"}}
            out["rows"].append(row)
            samples[arm][f"{model}_s{s}"] = np.load(work / "samples" / model / f"s{s}" / "samples.npy")
        per_wave_s = time.perf_counter() - t0
        print(f"extra_seeds: wave {seeds} in {per_wave_s:.0f} s, {len(out['rows'])} rows", flush=True)
        if out["rows"]:
            with open(rows_csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(out["rows"][0]))
                w.writeheader()
                w.writerows(out["rows"])
            for arm, sets in samples.items():  # one file per arm: each stays under the 16 MB a file may bring back
                if sets:
                    np.savez_compressed(Path(args.out) / f"extra_seeds_{arm.replace('@', '_lambda_')}.npz", **sets)
        if out["failures"] or out["cut_by_budget"] or time.monotonic() > deadline or args.dry_run:
            break  # a dry run shows the chain working once
    # a dry run must show the whole chain working once; on a GPU the rows are whatever the budget left time for
    out["passed"] = not out["failures"] and (bool(out["rows"]) or not args.dry_run)
    return out


def section_converged_study(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The powered study at the plateau: every arm of :data:`STUDY_ARMS` trained with its seeds stacked in one
    process (tools.train_stacked, into the train stages' state folders), then each seed's train (no steps), sample
    (10,000 samples), evaluate and, for the baseline and AGM, steps (EMA snapshots every 10% of the steps, 5,000
    samples each) stages, as dvc.yaml writes them, one chain per seed, all of an arm's seeds at once; one row per
    seed (converged_study.csv) and each seed's steps curve (converged_study_steps/), written as they land, until
    the budget ends."""
    deadline = time.monotonic() + args.section_budget
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 200)
    steps = 6 if args.dry_run else CONVERGED_STEPS
    overrides: dict[str, Any] = study_overrides(steps)
    # dry: every kind of arm once through its stages, AGM's two seeds stacked (sized for a loaded 2-core machine)
    arms = [("baseline", 1), ("agm@1.0", 2), ("shuffled@1.0", 1)] if args.dry_run else list(STUDY_ARMS)
    if args.dry_run:
        overrides |= {"train.batch_size": 32, "execution.log_every": 2, "execution.checkpoint_every": 2,
                      "sample.num_samples": 64, "sample.batch_size": 64, "sample.nfe": 2, "sample.grid_nfe": 2,
                      "sample.grid_size": 4, "eval.feature_net_epochs": 1, "eval.snapshot_samples": 32,
                      "execution.device": "cpu"}
    base = read_params(DEFAULT)
    setup_dir = tmp / "converged"
    setup_dir.mkdir()
    write_params(base, setup_dir / "params.yaml", overrides)
    os.environ["AGM_STATE_DIR"] = str(tmp / "converged_state")  # shared: the baseline trains once for every λ
    setup = run_stages(["source", "prepare", "features"], setup_dir, "converged_study ")
    out: dict[str, Any] = {"steps": steps, "first_seed": first_seed, "overrides": overrides, "setup": setup,
                           "arms": [a for a, _ in arms], "rows": [], "failures": [], "trained": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    default_lambda, workdirs = float(base["lambda"]), {}
    rows_csv, steps_dir = Path(args.out) / "converged_study.csv", Path(args.out) / "converged_study_steps"
    env = stage_env()
    for arm, n in arms:
        model, lam = _arm(arm, default_lambda)
        if lam not in workdirs:
            workdirs[lam] = tmp / f"converged_lambda_{lam:g}"
            shutil.copytree(setup_dir, workdirs[lam])
            write_params(base, workdirs[lam] / "params.yaml", {**overrides, "lambda": lam})
        work, seeds = workdirs[lam], list(range(first_seed, first_seed + n))
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "tools.train_stacked", "--params", "params.yaml", "--variant",
                              model, "--seeds", *map(str, seeds), "--data", "data/prepared/train.npz"],
                             cwd=work, env=env, capture_output=True, text=True,
                             timeout=max(deadline - time.monotonic(), 1))
        out["trained"].append({"arm": arm, "seeds": seeds, "returncode": res.returncode,
                               "seconds": round(time.perf_counter() - t0, 1)})
        print(f"converged_study: {arm} seeds {seeds[0]}-{seeds[-1]} trained stacked in "
              f"{out['trained'][-1]['seconds']} s (rc {res.returncode})", flush=True)
        if res.returncode:
            out["failures"].append({"arm": arm, "tail": (res.stdout + res.stderr)[-1500:]})
            break
        main = model in ("baseline", "agm")
        chains = []  # one chain of stage commands per seed, all seeds at once (the networks are small)
        for seed in seeds:
            names = chain(model, seed)
            log_path = tmp / f"converged_{arm}_{seed}.log"
            log = open(log_path, "w")
            chains.append((seed, log, log_path, subprocess.Popen(
                " && ".join(stage_commands(names).values()), shell=True, cwd=work, env=env, stdout=log,
                stderr=subprocess.STDOUT)))
        for seed, log, log_path, proc in chains:
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:  # the budget ended: the rows so far stand
                proc.kill()
                proc.wait()
                rc = None
            log.close()
            if rc != 0:
                if rc is not None:
                    out["failures"].append({"arm": arm, "seed": seed, "returncode": rc,
                                            "tail": log_path.read_text()[-1500:]})
                continue
            m = read_metrics(work, model, seed)
            out["rows"].append({"model": model, "lambda": 0.0 if model == "baseline" else lam, "seed": seed,
                                "device": args.device_name, "profile": "default", "train_steps": steps,
                                **{k: m[k] for k in m if k != "seconds"}})
            if main:
                (steps_dir / arm.replace("@", "_lambda_")).mkdir(parents=True, exist_ok=True)
                shutil.copy(work / "steps" / model / f"s{seed}.csv",
                            steps_dir / arm.replace("@", "_lambda_") / f"s{seed}.csv")
            with open(rows_csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(out["rows"][0]))
                w.writeheader()
                w.writerows(out["rows"])
            write_part(args, out)
        print(f"converged_study: {arm}: {len(out['rows'])} rows so far", flush=True)
        if time.monotonic() > deadline - 20:
            break
    # a dry run must show every kind of arm through its stages; on a GPU the rows are what the budget left time for
    out["passed"] = not out["failures"] and (not args.dry_run or len(out["rows"]) == sum(n for _, n in arms))
    return out


def section_sample_precision(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Is bf16 sampling safe? tools.sample_precision on an AGM model the converged study trained in this run
    (λ = 0.1 where it got that far): float32 and bf16 with the same noise, 4 noise seeds at that study's sample
    count, the paired difference against the sampling noise. The paper profile keeps sample.amp none unless it is
    inside."""
    models = sorted(tmp.glob("converged_lambda_*/runs/agm/s*/model.pt"), key=lambda p: "lambda_0.1" not in str(p))
    if not models:
        return {"skipped": "the converged study trained no AGM model in this run", "passed": True}
    model, work = models[0], models[0].parents[3]
    out_json = Path(args.out) / "sample_precision.json"
    res = subprocess.run([sys.executable, "-m", "tools.sample_precision", "--model", str(model), "--features",
                          str(work / "data" / "features"), "--params", str(work / "params.yaml"), "--noise-seeds",
                          "0", "1", "2", "3", "--out", str(out_json)], cwd=work, env=stage_env(),
                         capture_output=True, text=True, timeout=max(args.section_budget, 10))
    print(res.stdout[-3000:] + res.stderr[-3000:], flush=True)
    if res.returncode:
        return {"returncode": res.returncode, "tail": (res.stdout + res.stderr)[-1500:], "passed": False}
    return {**json.loads(out_json.read_text()), "passed": True}


NO_DETACH_STEPS = 20_000
"""The paper's horizon for the collapse without the stop-gradient (§4.4)."""


def _curves(live: Path) -> Any:
    """A run's dvclive curves so far: step, drift_loss, potential_loss (what the collapse rule reads)."""
    import pandas as pd

    cols = [pd.read_csv(live / "plots" / "metrics" / "train" / f"{key}.tsv", sep="\t").set_index("step")[[key]]
            for key in ("drift_loss", "potential_loss")]
    return pd.concat(cols, axis=1).dropna().reset_index()


def section_no_detach(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """AGM and no_detach of 3 seeds trained side by side (one process each) towards 20k steps, until the budget ends;
    the collapse rule (agm.report.controls.collapse_step) on each seed's curves as far as both got."""
    from agm.report.controls import collapse_step, describe_collapse

    deadline = time.monotonic() + args.section_budget - 15  # time left to read the curves and write the result
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 100)
    seeds = [first_seed] if args.dry_run else [first_seed, first_seed + 1, first_seed + 2]
    steps = 6 if args.dry_run else NO_DETACH_STEPS
    overrides: dict[str, Any] = {"train.steps": steps, "train.snapshot_every": 0, "controls": ["no_detach"],
                                 "seeds": seeds, "execution.checkpoint_every": 1000}
    if args.dry_run:
        overrides |= {"train.batch_size": 32, "execution.log_every": 2, "execution.checkpoint_every": 2,
                      "eval.feature_net_epochs": 1, "execution.device": "cpu"}
    base = read_params(DEFAULT)
    work = tmp / "no_detach"
    work.mkdir()
    write_params(base, work / "params.yaml", overrides)
    setup = run_stages(["source", "prepare"], work, "no_detach ")
    out: dict[str, Any] = {"seeds": seeds, "steps": steps, "lambda": float(base["lambda"]), "overrides": overrides,
                           "setup": setup, "runs": [], "collapse": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    env = stage_env(OMP_NUM_THREADS="2")
    procs = []
    t0 = time.perf_counter()
    for s in seeds:
        for model, stage in (("agm", f"train_agm@{s}"), ("no_detach", f"train_control@no_detach-{s}")):
            log_path = tmp / f"no_detach_{model}_{s}.log"
            log = open(log_path, "w")
            procs.append((model, s, log, subprocess.Popen(stage_commands([stage])[stage], shell=True, cwd=work,
                                                          env=env, stdout=log, stderr=subprocess.STDOUT)))
    for model, s, log, proc in procs:
        try:
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:  # the budget ended: the curves so far still count
            proc.kill()
            rc = proc.wait()
        log.close()
        out["runs"].append({"model": model, "seed": s, "returncode": rc})
    out["seconds"] = round(time.perf_counter() - t0, 1)
    frames = []
    for s in seeds:
        curves = {}
        for model in ("agm", "no_detach"):
            live = work / "live" / model / f"s{s}"
            if (live / "plots" / "metrics" / "train" / "drift_loss.tsv").exists():
                curves[model] = _curves(live)
                frames.append(curves[model].assign(model=model, seed=s))
        if len(curves) < 2:
            out["collapse"].append({"seed": s, "verdict": "no curves"})
            continue
        reached = int(min(curves["agm"]["step"].max(), curves["no_detach"]["step"].max()))
        nd = curves["no_detach"][curves["no_detach"]["step"] <= reached]
        c = collapse_step(nd, curves["agm"], float(base["potential"]["margin"]))
        out["collapse"].append({"seed": s, "steps_reached": reached, "collapse_step": c.step, "reason": c.reason,
                                "verdict": describe_collapse(c)})
    if frames:
        import pandas as pd

        pd.concat(frames).to_csv(Path(args.out) / "no_detach_curves.csv", index=False)
    reached = [c.get("steps_reached", 0) for c in out["collapse"]]
    out["steps_per_s"] = round(min(reached) / out["seconds"], 2) if out["seconds"] else None
    # a dry run must train every run to its end; on a GPU the curves are whatever the budget left time for
    out["passed"] = bool(frames) and (not args.dry_run or all(r["returncode"] == 0 for r in out["runs"]))
    return out


SECTION_FUNCS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "env": section_env, "train": section_train, "train_compiled": section_train_compiled,
    "stacked_seeds": section_stacked_seeds, "converged_study": section_converged_study,
    "sample_precision": section_sample_precision,
    "sample": section_sample, "attention": section_attention, "correctness": section_correctness,
    "stages": section_stages, "extra_seeds": section_extra_seeds, "no_detach": section_no_detach,
}


# ---------------------------------------------------------------------------------------------------------
# the driver: one process per section, the report rewritten after each


def fmt(x: Any, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_md(report: dict[str, Any]) -> str:
    s = report["sections"]
    env = s.get("env", {}).get("result", {})
    lines = [f"# GPU check — {env.get('device_name', '?')} — {report['started'][:10]}", "",
             f"`scripts/gpu_check.sh{' --dry-run' if report['dry_run'] else ''}` at commit `{report['commit']}`, "
             f"budget {report['budget_s']:.0f} s, {report['elapsed_s']:.0f} s used. torch {env.get('torch')}, "
             f"CUDA {env.get('cuda_runtime')}, Triton {env.get('triton')}, "
             f"driver/GPU `{env.get('nvidia_smi', 'n/a')}`, "
             f"bf16 {env.get('bf16_supported')}.", "", "| section | status | seconds |", "|---|---|---|"]
    for name, *_ in SECTIONS:
        if name in s:
            lines.append(f"| {name} | {s[name]['status']} | {s[name]['seconds']:.0f} |")
    ok = [s[k]["result"] for k in ("train", "train_compiled") if s.get(k, {}).get("result")]
    runs = [r for res in ok for r in res["runs"]]
    if runs:
        lines += ["", f"Training step, batch {runs[0]['batch_size']}, {ok[0]['amp']} autocast "
                  f"(paper: {PAPER_IMAGES_PER_S:.0f} images/s on one RTX 4090):", "",
                  "| variant | compile | channels_last | ms/step | images/s | TFLOP/s | % dense peak | GiB "
                  "| host syncs | h for 500k |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in runs:
            pf = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
            lines.append(f"| {r['variant']} | {r['compile']} | {r['channels_last']} | {r['step_time_ms']:.1f} | "
                         f"{r['images_per_s']:.0f} | {r['achieved_tflops']:.1f} | {fmt(pf)} | "
                         f"{r['peak_memory_gib']:.1f} | {r['host_syncs_per_step']} | "
                         f"{r['projected_hours_500k_steps']:.1f} |")
    if s.get("stacked_seeds", {}).get("result"):
        r = s["stacked_seeds"]["result"]
        lines += ["", f"Stacked seeds (default profile's AGM, batch {r['batch_size']}): " + "; ".join(
            f"{x['seeds']} seeds {x['seed_steps_per_s']} seed-steps/s (x{x['factor']})" for x in r["runs"]) + "."]
    if s.get("sample", {}).get("status") == "ok":
        r = s["sample"]["result"]
        lines += ["", f"Sampling (Euler–Maruyama, EMA drift; timed {r['timed_nfe']} NFE, projected to 500): largest "
                  f"batch that fits {r['largest_batch_that_fits']}.", "",
                  "| batch | mode | ms/NFE | images/s at NFE 500 | min for 10k | peak GiB |",
                  "|---|---|---|---|---|---|"]
        for x in r["runs"]:  # "mode" since the A/B of sampling modes; earlier runs name their dtype ("amp")
            if not x.get("fits", True):
                lines.append(f"| {x['batch']} | {x['mode']} | out of memory | | | |")
                continue
            lines.append(f"| {x['batch']} | {x.get('mode', x.get('amp'))} | {1e3 * x['seconds_per_nfe']:.1f} | "
                         f"{x['images_per_s_at_nfe_500']:.1f} | {x['projected_minutes_10k_at_nfe_500']:.1f} | "
                         f"{fmt(x.get('peak_memory_gib'))} |")
        if "full_draw" in r:
            f = r["full_draw"]
            lines.append(f"\nOne whole draw: batch {f['batch']} at NFE {f['nfe']} in {f['seconds']:.1f} s "
                         f"(projected {f['projected_seconds']:.1f} s).")
    if (sp := s.get("sample_precision", {}).get("result")) and "verdict" in sp:
        lines += ["", f"bf16 sampling ({sp['machine']}, {sp['n']} samples at NFE {sp['nfe']}, "
                  f"{len(sp['rows'])} noise seeds): {sp['metric']} bf16 − float32 "
                  f"{sp['paired_diff_bf16_minus_float32']:+.4f} ± {sp['paired_diff_ci95_half_width']:.4f}, sampling "
                  f"noise SD {sp['sampling_noise_sd']:.4f}: {sp['verdict']}."]
    if s.get("attention", {}).get("result"):
        r = s["attention"]["result"]
        lines += ["", f"scaled_dot_product_attention at batch {r['batch']}, {r['heads']} heads, {r['tokens']} tokens: "
                  + "; ".join(f"{x['dtype']} {x['layout']} {x['ms']:.1f} ms ({fmt(x['extra_peak_gib'])} GiB)"
                              for x in r["runs"]) + "."]
    if s.get("correctness", {}).get("status") == "ok":
        c = s["correctness"]["result"]
        b, t = c["bf16_vs_fp32"], c["bf16_training"]
        lines += ["", f"Correctness: bf16 vs float32 drift loss over the first {b['steps']} steps, max relative "
                  f"difference {b['max_rel_diff_drift_loss']:.4f} (tolerance {b['tolerance']}: "
                  f"{'pass' if b['passed'] else 'FAIL'}); bf16 training {t['steps']} steps, drift loss "
                  f"{t['mean_drift_loss_first_10pct']:.4f} → {t['mean_drift_loss_last_10pct']:.4f} "
                  f"({'pass' if t['passed'] else 'FAIL'})."]
    if "stages" in s and s["stages"].get("result"):
        st = s["stages"]["result"]
        lines += ["", "Paper-path stages on this device: " + ", ".join(
            f"{r['stage']} {'ok' if r['returncode'] == 0 else 'rc ' + str(r['returncode'])} ({r['seconds']:.0f} s)"
            for r in st["stages"]) + f" — {'pass' if st['passed'] else 'FAIL'}."]
    if s.get("converged_study", {}).get("result"):
        c = s["converged_study"]["result"]
        lines += ["", f"Converged study ({c['steps']} steps, seeds stacked per arm from {c['first_seed']}): "
                  f"{len(c['rows'])} rows (converged_study.csv, converged_study_steps/), "
                  f"{len(c['failures'])} failures; "
                  + "; ".join(f"{t['arm']} trained in {t['seconds']} s" for t in c["trained"]) + "."]
    if "extra_seeds" in s and s["extra_seeds"].get("result"):
        e = s["extra_seeds"]["result"]
        lines += ["", f"Extra default-profile seeds: {len(e['rows'])} rows (extra_seeds.csv), "
                  f"{len(e['failures'])} failures."]
    if "no_detach" in s and s["no_detach"].get("result"):
        nd = s["no_detach"]["result"]
        lines += ["", f"Without the stop-gradient (λ = {nd['lambda']:g}, {nd['steps']} steps asked, "
                  f"{nd.get('steps_per_s')} steps/s per run, no_detach_curves.csv): "
                  + " ".join(f"seed {c['seed']}: {c['verdict']}" for c in nd["collapse"])]
    for name, sec in s.items():
        if sec["status"] not in ("ok",):
            lines.append(f"\n**{name}: {sec['status']}** — {sec.get('error', '')[:400]}")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    """HEAD (``+dirty`` with uncommitted changes to tracked files), or $GPU_CHECK_COMMIT where there is no git."""
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    try:
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return (res.stdout.strip() or "unknown") + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def _echo(stream: Any, log: Any) -> None:
    """Copy a section's output to this process's stdout (indented) and to the log, line by line."""
    for line in stream:
        sys.stdout.write(f"  {line}")
        sys.stdout.flush()
        log.write(line)
        log.flush()


def drive(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    report: dict[str, Any] = {"schema": 1, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "dry_run": args.dry_run, "budget_s": args.budget, "commit": git_commit(),
                              "sections": {}}
    log = open(out / "gpu_check.log", "a")
    wanted = [s for s in SECTIONS if not args.only or s[0] in args.only]

    def save() -> None:
        report["elapsed_s"] = time.monotonic() - start
        tmp_json = out / "gpu_check.json.tmp"
        tmp_json.write_text(json.dumps(report, indent=1, default=str))
        tmp_json.replace(out / "gpu_check.json")
        (out / "gpu_check.md").write_text(summary_md(report))

    device_name = "cpu (dry run)"
    channels_last = False
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp_root:
        for name, cap_gpu, cap_dry in wanted:
            left = args.budget - (time.monotonic() - start)
            cap = min(cap_dry if args.dry_run else cap_gpu, left)
            if cap < 15:
                report["sections"][name] = {"status": "skipped", "seconds": 0.0,
                                            "error": f"{left:.0f} s of the budget left"}
                save()
                continue
            part = Path(tmp_root) / f"{name}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--part", str(part), "--out",
                   str(out), "--section-budget", str(max(cap - 20, 10)), "--device-name", device_name]
            cmd += ["--dry-run"] if args.dry_run else []
            cmd += ["--channels-last"] if channels_last else []
            cmd += ["--arms", *args.arms]
            cmd += ["--first-seed", str(args.first_seed)] if args.first_seed is not None else []
            log.write(f"\n===== {name} (cap {cap:.0f} s) {' '.join(cmd)}\n")
            log.flush()
            print(f"gpu_check: {name} (cap {cap:.0f} s)", flush=True)
            t0 = time.monotonic()
            # its own POSIX process group (start_new_session), so a kill at the cap also ends the stage
            # processes the section started
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_root,
                                    start_new_session=True)
            echo = threading.Thread(target=_echo, args=(proc.stdout, log), daemon=True)  # output as it comes
            echo.start()
            status = "ok"
            try:
                proc.wait(timeout=cap)  # the cap holds even while the section prints nothing
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                status = OUT_OF_BUDGET
            echo.join(timeout=5)
            rec: dict[str, Any] = {"status": status, "seconds": time.monotonic() - t0}
            if part.exists():
                payload = json.loads(part.read_text())
                rec |= payload
                if status == "ok" and payload.get("error"):
                    rec["status"] = "failed"
            elif status == "ok":
                rec |= {"status": "failed", "error": f"exit code {proc.returncode}, no result written"}
            if status == OUT_OF_BUDGET:  # what it finished before the cap stays in rec["result"]
                rec["error"] = f"stopped at its cap of {cap:.0f} s, with what it had finished"
            if rec["status"] == "ok" and isinstance(rec.get("result"), dict) and rec["result"].get("passed") is False:
                rec["status"] = "check failed"
            report["sections"][name] = rec
            if name == "env" and rec["status"] == "ok":
                device_name = rec["result"].get("device_name", device_name)
            if name == "train" and rec["status"] == "ok":
                channels_last = bool(rec["result"].get("channels_last_helps"))
            save()
            print(f"gpu_check: {name} {rec['status']} in {rec['seconds']:.0f} s", flush=True)
    save()
    log.close()
    bad = not_ok(report, args.dry_run)
    print(f"gpu_check: {len(report['sections'])} sections, {'all ok' if not bad else 'not ok: ' + ', '.join(bad)}; "
          f"{out / 'gpu_check.json'}, {out / 'gpu_check.md'}")
    return 1 if bad else 0


def not_ok(report: dict[str, Any], dry_run: bool) -> list[str]:
    """The sections that make the check fail: any that failed; on a GPU a section stopped at its cap is out of
    budget (its result holds what it finished), not broken, but a dry run must run every section to its end."""
    fine = ("ok", "skipped") if dry_run else ("ok", "skipped", OUT_OF_BUDGET)
    return [n for n, r in report["sections"].items() if r["status"] not in fine]


def write_part(args: argparse.Namespace, result: dict[str, Any], **extra: Any) -> None:
    """Write a section's result for the driver (atomically: a kill never leaves half a file)."""
    tmp = Path(args.part + ".tmp")
    tmp.write_text(json.dumps({"result": result, **extra}, default=str))
    tmp.replace(args.part)


def run_section(args: argparse.Namespace) -> int:
    tmp = Path.cwd()
    payload: dict[str, Any] = {}
    try:
        payload["result"] = SECTION_FUNCS[args.section](args, tmp)
    except Exception as exc:  # recorded in the report: the next section still runs
        traceback.print_exc()
        payload["error"] = f"{type(exc).__name__}: {exc}"
        payload["traceback"] = traceback.format_exc()[-4000:]
    if "result" not in payload and Path(args.part).exists():  # keep what the section finished before failing
        payload["result"] = json.loads(Path(args.part).read_text()).get("result")
    write_part(args, payload.pop("result", None), **payload)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.md, gpu_check.log")
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    ap.add_argument("--budget", type=float, help="seconds for all sections (default: 480 on a GPU; dry: the sum "
                    "of the sections' caps)")
    ap.add_argument("--only", nargs="+", choices=[s[0] for s in SECTIONS], help="run only these sections")
    ap.add_argument("--section", choices=list(SECTION_FUNCS), help=argparse.SUPPRESS)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--section-budget", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--device-name", default="", help=argparse.SUPPRESS)
    ap.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arms", nargs="+", help=f"extra_seeds: the arms, model or model@lambda (default: "
                    f"{' '.join(ARMS)}; dry run: baseline shuffled@1.0, both the main and the control stages)")
    ap.add_argument("--first-seed", type=int,
                    help="extra_seeds, no_detach: the first training seed (default: 100; dry: 900); "
                    "converged_study: its first seed (default: 200)")
    args = ap.parse_args()
    if args.arms is None:
        args.arms = ["baseline", "shuffled@1.0"] if args.dry_run else list(ARMS)
    if args.budget is None:  # dry: every section its whole cap, so a loaded 2-core machine still finishes each
        args.budget = sum(cap for _, _, cap in SECTIONS) if args.dry_run else 480.0
    if args.section:
        return run_section(args)
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
