"""Peak FLOP rates of a device, for the benchmark's peak fraction: a table of GPUs, and the CPU's fp32 peak
derived from /proc/cpuinfo (cores × vector lanes × FMA units × 2 × clock)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

# Dense (no structured sparsity) peak tensor-core FLOP/s per GPU, by compute dtype: "bf16" (also fp16) and
# "tf32" (float32 matmuls and convolutions once configure_backends has allowed TF32). Matched against
# torch.cuda.get_device_name in this order, so the more specific names come first. Sources: NVIDIA's data
# sheets, whose sparsity figures are twice these: H100 (SXM5: 989 bf16 / 495 tf32; PCIe: 756 / 378;
# NVL: 835 / 418), H200 (SXM: as H100 SXM5; NVL: 835 / 418), GH200 (as H100 SXM5), A100 (312 / 156);
# RTX 4090: Ada Lovelace architecture whitepaper, appendix (165 bf16 with fp32 accumulate / 83 tf32).
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756e12, "tf32": 378e12}),
    ("H100 NVL", {"bf16": 835e12, "tf32": 418e12}),
    ("H200 NVL", {"bf16": 835e12, "tf32": 418e12}),
    ("GH200", {"bf16": 989e12, "tf32": 495e12}),
    ("H100", {"bf16": 989e12, "tf32": 495e12}),
    ("H200", {"bf16": 989e12, "tf32": 495e12}),
    ("A100", {"bf16": 312e12, "tf32": 156e12}),
    ("RTX 4090", {"bf16": 165e12, "tf32": 83e12}),
)


def peak_flops_for(device_name: str, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of the GPU called ``device_name`` for ``dtype`` (float32 means TF32), or None."""
    kind = {torch.bfloat16: "bf16", torch.float16: "bf16", torch.float32: "tf32"}.get(dtype)
    for name, peaks in PEAK_FLOPS:
        if name in device_name:
            return peaks.get(kind) if kind else None
    return None


def cpu_peak(threads: int | None = None, cpuinfo: str | None = None) -> dict[str, Any] | None:
    """The CPU's fp32 peak, derived from /proc/cpuinfo: cores × vector lanes × FMA units × 2 × clock.

    cores: the threads torch uses (one per physical core here); lanes: fp32 lanes of the widest vector unit
    (16 with AVX-512F, 8 with AVX2, 4 with SSE); FMA units: 2 per core, as on Xeon cores with AVX-512 and on
    AVX2 cores since Haswell (an assumption: /proc/cpuinfo does not say); 2 FLOPs per FMA; clock: the
    "cpu MHz" the kernel reports (the base clock of a virtual CPU; turbo would raise it). None off Linux.
    Returns the inputs and ``flops_per_s``, so a reader can redo the product.
    """
    try:
        text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    mhz = next((float(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("cpu MHz")), None)
    if mhz is None:
        return None
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    cores = threads if threads is not None else torch.get_num_threads()
    fma_units = 2
    return {"cores": cores, "fp32_lanes": lanes, "fma_units": fma_units, "flops_per_fma": 2, "clock_hz": mhz * 1e6,
            "flops_per_s": cores * lanes * fma_units * 2 * mhz * 1e6}


def device_peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of ``device`` for ``dtype``: the GPU table (PEAK_FLOPS), or on the CPU the fp32 peak
    derived by :func:`cpu_peak` (float32 only); None where neither applies."""
    if device.type == "cpu":
        peak = cpu_peak() if dtype == torch.float32 else None
        return peak["flops_per_s"] if peak else None
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device), dtype)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name where the OS tells it (Linux), else the platform."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return sys.platform
