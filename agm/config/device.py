"""The device a stage runs on, from params `execution.device` (validated by agm.config.params)."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda when available, else cpu; 'auto' and 'cuda' pick the process's GPU (torchrun's LOCAL_RANK)."""
    import torch

    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name in ("auto", "cuda"):  # one GPU per process: torchrun's LOCAL_RANK
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)
