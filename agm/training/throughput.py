"""Speed measurements on one device (``tools/benchmark.py`` only; no training stage imports this module):
FLOP counting, a table of peak FLOP rates, and timers that synchronise CUDA.

What is measured, for a batch of B images:

    step time         t_step = (wall time of N steps after W untimed warm-up steps) / N,
                      with torch.cuda.synchronize() before the clock starts and before it stops
    images/s          B / t_step
    FLOPs per image   F_step / B, F_step counted by FlopCounterMode over one step: matmuls, convolutions and
                      attention, forward and backward, 2 FLOPs per multiply-add; elementwise ops, norms and the
                      optimiser are not counted (the usual model-FLOPs convention)
    peak fraction     (F_step / t_step) / P, P the device's dense peak for the compute dtype (PEAK_FLOPS);
                      None where P is not known (GPUs not in the table); on the CPU, P is derived (cpu_peak)

The trainer's speed switches (backends, channels_last, torch.compile) are in agm.training.execution.
"""

from __future__ import annotations

import copy
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter

from agm.math.solver import euler_maruyama
from agm.training.loop import train
from agm.training.peak_flops import device_peak_flops
from agm.training.trainer_base import TrainerBase

# ---------------------------------------------------------------------------------------------------
# FLOPs

# FlopCounterMode has formulas for the CUDA attention kernels only; on the CPU, scaled_dot_product_attention
# runs this fused kernel, whose FLOPs are those of the same two (forward) or five (backward) batched matmuls.
_aten = torch.ops.aten
_CPU_ATTENTION_FLOPS = {
    _aten._scaled_dot_product_flash_attention_for_cpu:
        lambda query, key, value, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(query, key, value),
    _aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda grad_out, query, key, value, *args, out_shape=None, **kwargs: flop_counter.sdpa_backward_flop_count(
            grad_out, query, key, value),
}


class _GlobalTotalOnly:
    """Stands in for FlopCounterMode's module tracker, which attributes FLOPs to modules through backward
    hooks that ``torch.autograd.grad`` rejects ("A leaf node was passed to _will_engine_execute_node"):
    Action Matching's loss takes gradients inside its step. Only the global total is read here."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalTotalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of running ``fn()`` (matmul, convolution and attention kernels, forward and backward, double
    backward included; 2 per FMA)."""
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS)
    counter.mod_tracker = _GlobalTotalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


@dataclass(frozen=True)
class StepBatch:
    """The inputs of one ``step`` of a trainer (agm.training.loop): x1, x0, eps, z: (B, C, H, W); t: (B,)."""

    x1: torch.Tensor
    x0: torch.Tensor
    eps: torch.Tensor
    t: torch.Tensor
    z: torch.Tensor

    def __len__(self) -> int:
        return len(self.x1)


def random_batch(batch_size: int, image_shape: tuple[int, int, int], *, seed: int,
                 device: torch.device) -> StepBatch:
    """A batch of the right shapes for timing: x1 uniform in [-1, 1], Gaussian x0, ε, z, t uniform in [0, 1]."""
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (batch_size, *image_shape)
    x1 = torch.rand(shape, generator=gen, device=device) * 2 - 1
    x0, eps, z = (torch.randn(shape, generator=gen, device=device) for _ in range(3))
    return StepBatch(x1=x1, x0=x0, eps=eps, t=torch.rand(batch_size, generator=gen, device=device), z=z)


def run_step(trainer: TrainerBase, batch: StepBatch) -> None:
    """One ``trainer.step`` on ``batch`` (a single process's whole batch)."""
    trainer.step(batch.x1, batch.x0, batch.eps, batch.t, batch.z)


def step_flops(trainer: TrainerBase, batch: StepBatch) -> int:
    """FLOPs of one training step on ``batch``, counted on an eager copy of the trainer (left unchanged).

    Baseline: f forward and backward on B images. AGM adds V forward and backward on 2B images (L_V on
    x_t and the negatives z) and V forward on B images (the weights). Under torchrun every rank must call it
    (the weights all-gather V's values).
    """
    wrappers = ((trainer.f_train, trainer.f), (trainer.V_train, trainer.V))
    # deepcopy the modules and optimisers, not DDP or compiled wrappers: those become the copied plain modules
    twin = copy.deepcopy(trainer, {id(w): None for w, m in wrappers if w is not m})
    twin.f_train, twin.V_train = twin.f, twin.V
    return count_flops(lambda: run_step(twin, batch))


# ---------------------------------------------------------------------------------------------------
# timing, memory, host syncs


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); CPU work is synchronous already."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], Any], *, warmup: int, iters: int, device: torch.device) -> float:
    """Mean wall seconds per ``fn()`` over ``iters`` calls after ``warmup`` untimed calls (time.perf_counter)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA; the CPU's max RSS cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: torch.cuda.max_memory_allocated since the last reset. CPU: the process's max resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def peak_memory_kind(device: torch.device) -> str:
    """What :func:`peak_memory_bytes` measures on ``device``."""
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated, per measurement"
    return "process max RSS (getrusage ru_maxrss), cumulative since the process started"


def count_host_syncs(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Number of synchronising CUDA calls (a .item(), a device-to-host copy, ...) in ``fn()``; None off CUDA."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
            synchronize(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


# ---------------------------------------------------------------------------------------------------
# the two benchmarks


@dataclass(frozen=True)
class TrainBench:
    """One trainer's training speed on one batch size (see the module docstring for the definitions)."""

    batch_size: int
    step_time_s: float
    images_per_s: float
    flops_per_image: float
    achieved_flops_per_s: float
    peak_fraction: float | None
    peak_memory_bytes: int
    host_syncs_per_step: int | None


def bench_train(trainer: TrainerBase, batch: StepBatch, *, warmup: int, steps: int) -> TrainBench:
    """Time ``steps`` training steps on ``batch`` after ``warmup`` steps (compilation and autotuning happen there).

    The batch is drawn once: the per-step draw of the training loop (three randn, one rand, an index gather)
    is not timed. The peak fraction uses the dense peak for the trainer's autocast dtype (float32: TF32).
    """
    device = batch.x1.device
    reset_peak_memory(device)
    step_time = time_per_call(lambda: run_step(trainer, batch), warmup=warmup, iters=steps, device=device)
    memory = peak_memory_bytes(device)
    syncs = count_host_syncs(lambda: run_step(trainer, batch), device)
    flops = step_flops(trainer, batch)
    peak = device_peak_flops(device, trainer.amp_dtype or torch.float32)
    return TrainBench(
        batch_size=len(batch), step_time_s=step_time, images_per_s=len(batch) / step_time,
        flops_per_image=flops / len(batch), achieved_flops_per_s=flops / step_time,
        peak_fraction=flops / step_time / peak if peak else None, peak_memory_bytes=memory,
        host_syncs_per_step=syncs,
    )


def bench_bare_step(f: nn.Module, batch: StepBatch, *, lr: float, warmup: int, steps: int) -> float:
    """Seconds per bare network step on ``batch``: f forward on x_t, MSE to the target, backward, AdamW step.

    A copy of f is trained, so ``f`` is left unchanged. What a trainer step adds on top of this (the bridge,
    the EMA, clipping, statistics, and AGM's potential) is its overhead.
    """
    net = copy.deepcopy(f).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    x_t, target = batch.x0 * 0.5 + batch.x1 * 0.5, batch.x1 - batch.x0

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        (net(x_t, batch.t) - target).square().mean().backward()
        opt.step()

    return time_per_call(step, warmup=warmup, iters=steps, device=batch.x1.device)


def bench_loop(trainer: TrainerBase, data: torch.Tensor, *, batch_size: int, steps: int, seed: int) -> float:
    """Seconds per step of the training loop itself (agm.training.loop.train: the per-step draws, the step, the NaN
    check), as its log reports it, over ``steps`` steps on uint8 ``data`` (N, C, H, W); nothing is kept."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train(trainer, data, steps=steps, batch_size=batch_size, seed=seed, checkpoint_dir=tmp,
                       config={}, checkpoint_every=steps + 1, log_every=steps + 1)
    return result.history[-1]["step_time_s"]


@dataclass(frozen=True)
class SampleBench:
    """Euler–Maruyama sampling speed: one batch of ``batch_size`` images at ``nfe`` drift evaluations."""

    batch_size: int
    nfe: int
    time_s: float
    images_per_s: float
    flops_per_image: float
    achieved_flops_per_s: float
    peak_fraction: float | None
    peak_memory_bytes: int


def bench_sample(drift: nn.Module, image_shape: tuple[int, int, int], *, batch_size: int, nfe: int, g: float,
                 seed: int, amp: torch.dtype | None) -> SampleBench:
    """Time one ``euler_maruyama`` call (batch_size images, nfe steps) after a 1-step warm-up call.

    ``amp``: autocast dtype of the drift evaluations, or None for float32 (what ``stages/sample.py`` runs).
    FLOPs per image are nfe times the drift's forward FLOPs per image.
    """
    device = next(drift.parameters()).device
    shape = (batch_size, *image_shape)

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            return drift(x, t)

    def draw(n: int) -> torch.Tensor:
        return euler_maruyama(f, shape, n, g, torch.Generator(device=device).manual_seed(seed), device)

    draw(1)  # compilation, autotuning
    reset_peak_memory(device)
    seconds = time_per_call(lambda: draw(nfe), warmup=0, iters=1, device=device)
    memory = peak_memory_bytes(device)
    x, t = torch.zeros(shape, device=device), torch.zeros(batch_size, device=device)
    with torch.no_grad():
        flops = nfe * count_flops(lambda: f(x, t))
    peak = device_peak_flops(device, amp or torch.float32)
    return SampleBench(
        batch_size=batch_size, nfe=nfe, time_s=seconds, images_per_s=batch_size / seconds,
        flops_per_image=flops / batch_size, achieved_flops_per_s=flops / seconds,
        peak_fraction=flops / seconds / peak if peak else None, peak_memory_bytes=memory,
    )


__all__ = [
    "count_flops", "StepBatch", "random_batch", "run_step",
    "step_flops", "synchronize",
    "time_per_call", "reset_peak_memory", "peak_memory_bytes", "peak_memory_kind", "count_host_syncs",
    "TrainBench", "bench_train", "SampleBench", "bench_sample", "bench_bare_step", "bench_loop",
]
