"""``env``: GPU name and memory, driver, CUDA, cuDNN, torch, Triton, bf16 support."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .common import device_for


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
