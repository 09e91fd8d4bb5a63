"""Per-sample loss weightings: one small object per variant, ``w = weighting(x_t, t)``.

The drift loss is L_f = (1/B) Σ_i w_i ‖f(x_t,i, t_i) − v_t,i‖² (Eq. 13); a weighting supplies the w_i.
Each returns the weights of the global batch, unit mean over it (Eq. 11), given this process's slice
(x_t: (b, C, H, W), t: (b,)); under torchrun the slices are all-gathered (agm.distributed), so every
process holds the same (B,) weights and the trainer keeps its slice. ``differentiable`` says whether
L_f's gradient flows through the weights (the no-stop-gradient ablation, Eq. 12).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from agm.distributed import gather, world
from agm.losses import importance_weights
from agm.time_weighting import time_weights


class UnitWeights:
    """w ≡ 1: bridge matching without reweighting (the baseline, λ = 0)."""

    differentiable = False

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(t) * world()[1], device=t.device)


class PotentialWeights:
    """AGM's weights from the potential, w = clamp(B · softmax(λ · sigmoid(sg V(x_t))), w_min, w_max) (Eq. 11).

    Args:
        V: the potential V_φ (the trainer updates it; this reads its current values).
        lam: strength λ > 0.
        clamp: (w_min, w_max).
        detach: the stop-gradient sg(·); False is the ablation of Eq. 12 (one process only: under torchrun the
            other ranks' V values would enter the global softmax as constants, a wrong gradient).
        amp_dtype: autocast dtype of V's forward pass (None: float32).
    """

    def __init__(self, V: nn.Module, *, lam: float, clamp: tuple[float, float], detach: bool = True,
                 amp_dtype: torch.dtype | None = None) -> None:
        if lam <= 0:
            raise ValueError(f"PotentialWeights needs lam > 0 (lam = 0 is UnitWeights), got {lam}")
        if not detach and world()[1] > 1:
            raise ValueError("the no-stop-gradient ablation (detach=False) runs in one process: under torchrun "
                             "its gradient through the global-batch softmax would miss the other ranks' terms")
        self.V, self.lam, self.clamp, self.detach, self.amp_dtype = V, lam, clamp, detach, amp_dtype
        self.differentiable = not detach

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        autocast = (torch.autocast(x_t.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with torch.no_grad() if self.detach else contextlib.nullcontext(), autocast:
            v = self.V(x_t).float()
        return importance_weights(gather(v), self.lam, self.clamp, self.detach)


class TimeTableWeights:
    """The time-only control: w_i = W_{k(t_i)} / ((1/B) Σ_j W_{k(t_j)}), a fixed table over t-bins (no V).

    Args:
        table: (K,) per-bin weights W_k (agm.time_weighting.TimeWeightTable.as_tensor).
    """

    differentiable = False

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return time_weights(gather(t), self.table.to(t.device))
