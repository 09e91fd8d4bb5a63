"""Exponential moving average of the drift network's weights (docs/spec.md §4 step 4, paper §4.6).

    θ_EMA ← d_n · θ_EMA + (1 − d_n) · θ,     d_n = min(d, (1 + n) / (10 + n)) with warm-up, else d

n is the number of updates before this one. Without the warm-up, a short run's EMA keeps a share d^n of
the initial weights (at d = 0.995, 37% after 200 steps); the warm-up makes early averages short, so the
EMA forgets the initialisation within tens of steps, then averages over about 1 / (1 − d) steps. Buffers
are copied. The EMA network is the one sampled from at inference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(n: int, decay: float, warmup: bool) -> float:
    """d_n: the decay of update n + 1 (n updates done so far)."""
    return min(decay, (1 + n) / (10 + n)) if warmup else decay


class EMA(nn.Module):
    """Holds an EMA copy of ``model`` (kept in float32, never trained by an optimiser).

    ``updates`` counts the updates (the warm-up's n); a trainer checkpoints it beside the copy's weights.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights."""
        d = ema_decay_at(self.updates, self.decay, self.warmup)
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.updates += 1

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(*args)
