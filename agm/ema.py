"""Exponential moving average of the drift network's weights (docs/spec.md §4 step 4, paper §4.6).

    θ_EMA ← decay · θ_EMA + (1 − decay) · θ

Buffers are copied. The EMA network is the one sampled from at inference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Holds an EMA copy of ``model`` (kept in float32, never trained by an optimiser)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights."""
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(*args)
