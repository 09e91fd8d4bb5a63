"""Per-sample loss weightings: one small object per variant, ``w = weighting(x_t, t)``.

The drift loss is L_f = (1/B) Σ_i w_i ‖f(x_t,i, t_i) − v_t,i‖² (Eq. 13); a weighting supplies the w_i.
Each returns the weights of the global batch, unit mean over it (Eq. 11), given this process's slice
(x_t: (b, C, H, W), t: (b,)); under torchrun the slices are all-gathered (agm.distributed), so every
process holds the same (B,) weights and the trainer keeps its slice. ``differentiable`` says whether
L_f's gradient flows through the weights (the no-stop-gradient ablation, Eq. 12).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from agm.distributed import gather, world
from agm.losses import importance_weights
from agm.time_weighting import time_weights


@dataclass(frozen=True)
class WeightDiagnostics:
    """How far a batch's weights are from uniform; 0-d tensors (read them only when logging).

    ratio = max w / min w; ess = (Σ w)² / (B Σ w²), the effective sample size as a fraction of B (1 for equal
    weights, 1/B when one weight carries everything); clamped = the fraction of weights at either clamp bound.
    """

    ratio: torch.Tensor
    ess: torch.Tensor
    clamped: torch.Tensor


def weight_diagnostics(w: torch.Tensor, clamp: tuple[float, float] | None = None) -> WeightDiagnostics:
    """:class:`WeightDiagnostics` of weights ``w`` (B,) > 0; ``clamp``: the bounds they were clamped to, if any."""
    w = w.detach().float()
    clamped = torch.zeros((), device=w.device)
    if clamp is not None:
        lo, hi = clamp
        clamped = ((w <= lo * (1 + 1e-6)) | (w >= hi * (1 - 1e-6))).float().mean()
    return WeightDiagnostics(ratio=w.max() / w.min(), ess=w.sum().square() / (len(w) * w.square().sum()),
                             clamped=clamped)


class UnitWeights:
    """w ≡ 1: bridge matching without reweighting (the baseline, λ = 0)."""

    differentiable = False
    clamp = None

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
    clamp = None

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return time_weights(gather(t), self.table.to(t.device))


def stream_seed(seed: int, name: str) -> int:
    """A generator seed for the random stream ``name`` of training seed ``seed``: the first 63 bits of
    sha256(f"{seed}/{name}"). Streams of different names (or seeds) are independent of each other and of
    ``torch.Generator().manual_seed(seed)``, which draws the batches."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class ShuffledWeights:
    """The shuffled-weights control: AGM's weights, randomly permuted across the global batch.

    The same multiset of weights at every step, with no link between a weight and its sample: if AGM matches
    this control, the information in V's weights is not what helps. The permutation comes from its own
    generator (checkpointed through ``state_dict``), the same on every process, seeded with
    :func:`stream_seed` ``(seed, "shuffled")``: not the training seed itself, which seeds the batch draws, so
    the permutations are not a copy of the batch stream.

    Args:
        inner: the weighting whose weights are shuffled (``PotentialWeights`` with the stop-gradient).
        seed: the training seed the permutation stream is derived from.
    """

    differentiable = False

    def __init__(self, inner: PotentialWeights, seed: int) -> None:
        if inner.differentiable:
            raise ValueError("shuffled weights carry no gradient: shuffle weights with the stop-gradient")
        self.inner, self.clamp = inner, inner.clamp
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "shuffled"))

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = self.inner(x_t, t)
        return w[torch.randperm(len(w), generator=self.generator).to(w.device)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
