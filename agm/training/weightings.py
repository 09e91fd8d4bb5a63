"""Per-sample loss weightings: one small class per weighting, ``w = weighting(x_t, t)``.

The drift loss is L_f = (1/B) Σ_i w_i ‖f(x_t,i, t_i) − v_t,i‖² (Eq. 13); a weighting supplies the w_i.
Each returns the weights of the global batch, unit mean over it (Eq. 11), given this process's slice
(x_t: (b, C, H, W), t: (b,)); under torchrun the slices are all-gathered (agm.training.distributed), so every
process holds the same (B,) weights and the trainer keeps its slice. ``differentiable`` says whether
L_f's gradient flows through the weights (the no-stop-gradient ablation, Eq. 12).

A variant (agm.variants) names its weighting class; ``cls.for_run(inputs)`` builds it from the
:class:`WeightingInputs` of the run, and ``needs_potential`` / ``needs_time_table`` say which inputs it takes.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from agm.math.losses import importance_weights
from agm.math.time_bins import time_weights
from agm.training.distributed import gather, world


@dataclass(frozen=True)
class WeightingInputs:
    """What a run hands its weighting class (``for_run``); None where the run has no such input.

    Attributes:
        V: the potential V_φ (built when the class ``needs_potential``).
        lam: λ > 0 of Eq. 11; clamp: (w_min, w_max).
        amp_dtype: autocast dtype of V's forward pass (None: float32).
        seed: the training seed (a weighting with its own random stream derives it from this).
        time_table: (K,) per-bin weights W_k (when the class ``needs_time_table``; agm.math.time_bins).
    """

    seed: int
    V: nn.Module | None = None
    lam: float | None = None
    clamp: tuple[float, float] | None = None
    amp_dtype: torch.dtype | None = None
    time_table: torch.Tensor | None = None


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
    """w ≡ 1: bridge matching without reweighting (the baseline; AGM at λ = 0, agm.variants)."""

    needs_potential = False
    needs_time_table = False
    differentiable = False
    clamp = None

    @classmethod
    def for_run(cls, inputs: WeightingInputs) -> UnitWeights:
        return cls()

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(t) * world()[1], device=t.device)


class PotentialWeights:
    """AGM's weights from the potential, w = clamp(B · softmax(λ · sigmoid(sg V(x_t))), w_min, w_max) (Eq. 11).

    Args:
        V: the potential V_φ (the trainer updates it; this reads its current values).
        lam: strength λ > 0.
        clamp: (w_min, w_max).
        detach: the stop-gradient sg(·); False is the ablation of Eq. 12 (:class:`NoStopGradientWeights`).
        amp_dtype: autocast dtype of V's forward pass (None: float32).
    """

    needs_potential = True
    needs_time_table = False

    def __init__(self, V: nn.Module, *, lam: float, clamp: tuple[float, float], detach: bool = True,
                 amp_dtype: torch.dtype | None = None) -> None:
        if lam <= 0:
            raise ValueError(f"PotentialWeights needs lam > 0 (lam = 0 is UnitWeights), got {lam}")
        self.V, self.lam, self.clamp, self.detach, self.amp_dtype = V, lam, clamp, detach, amp_dtype
        self.differentiable = not detach

    @classmethod
    def for_run(cls, inputs: WeightingInputs) -> PotentialWeights:
        return cls(inputs.V, lam=inputs.lam, clamp=inputs.clamp, amp_dtype=inputs.amp_dtype)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        autocast = (torch.autocast(x_t.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with torch.no_grad() if self.detach else contextlib.nullcontext(), autocast:
            v = self.V(x_t).float()
        return importance_weights(gather(v), self.lam, self.clamp, self.detach)


class NoStopGradientWeights(PotentialWeights):
    """The ablation of Eq. 12: AGM's weights without the stop-gradient, so L_f's gradient reaches V through w.

    Its gradient is right in one process only: under torchrun the other ranks' V values would enter the global
    softmax as constants (the no_detach row of agm.variants is ``single_process``).
    """

    def __init__(self, V: nn.Module, *, lam: float, clamp: tuple[float, float],
                 amp_dtype: torch.dtype | None = None) -> None:
        super().__init__(V, lam=lam, clamp=clamp, detach=False, amp_dtype=amp_dtype)


class TimeTableWeights:
    """The time-only control: w_i = W_{k(t_i)} / ((1/B) Σ_j W_{k(t_j)}), a fixed table over t-bins (no V).

    Args:
        table: (K,) per-bin weights W_k (agm.math.time_bins.TimeWeightTable.as_tensor).
    """

    needs_potential = False
    needs_time_table = True
    differentiable = False
    clamp = None

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    @classmethod
    def for_run(cls, inputs: WeightingInputs) -> TimeTableWeights:
        return cls(inputs.time_table)

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

    needs_potential = True
    needs_time_table = False
    differentiable = False

    def __init__(self, inner: PotentialWeights, seed: int) -> None:
        if inner.differentiable:
            raise ValueError("shuffled weights carry no gradient: shuffle weights with the stop-gradient")
        self.inner, self.clamp = inner, inner.clamp
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "shuffled"))

    @classmethod
    def for_run(cls, inputs: WeightingInputs) -> ShuffledWeights:
        return cls(PotentialWeights.for_run(inputs), inputs.seed)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        w = self.inner(x_t, t)
        return w[torch.randperm(len(w), generator=self.generator).to(w.device)]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
