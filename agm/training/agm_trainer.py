"""The AGM trainer: one step in the paper's order (docs/spec.md §4, paper §4.5).

One step (docs/spec.md §4):
1. draw x1 (a batch of data), x0, ε, t and build x_t, v_t on the bridge (Eqs. 6, 9);
2. update V on L_V (Eq. 10) — skipped when there is no V (the baseline and the time-only control);
3. with the updated V, compute the weights w = weighting(x_t, t) (Eq. 11; agm.training.weightings);
4. update f on L_f = mean_i w_i ‖f(x_t,i, t_i) − v_t,i‖² (Eq. 13), clip gradients, update the EMA.

Without the stop-gradient (Eq. 12, a weighting whose ``differentiable`` is True) steps 2 and 4 merge: V is
not updated first, and takes one clipped optimiser step on ∇(L_V + L_f), so the ablation changes only the
gradient path. Under torchrun every process trains its slice of the global batch and the weights are
normalised over the global batch, so a multi-process run computes the single-process step (up to
floating-point reduction order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from agm.math.bridge import Schedule, sample_bridge
from agm.math.losses import drift_loss, potential_loss
from agm.math.time_bins import WeightByTime
from agm.training.distributed import gather, global_mean, local_slice
from agm.training.trainer_base import TrainerBase
from agm.training.weightings import weight_diagnostics


class Weighting(Protocol):
    """``weighting(x_t, t)`` → the global batch's weights, unit mean (agm.training.weightings)."""

    differentiable: bool
    clamp: tuple[float, float] | None

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class StepStats:
    """What one AGM step measured; 0-d tensors on the training device (read them only when logging).

    Every trainer returns its own frozen dataclass of 0-d tensors, named for what it measures; the loop
    logs its fields as they are, checks them all for NaN, and shows the first (the trained loss).
    """

    drift_loss: torch.Tensor
    potential_loss: torch.Tensor
    w_min: torch.Tensor
    w_mean: torch.Tensor
    w_max: torch.Tensor
    w_std: torch.Tensor
    w_t_corr: torch.Tensor
    w_ratio: torch.Tensor
    w_ess: torch.Tensor
    w_clamped: torch.Tensor


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.float() - a.float().mean(), b.float() - b.float().mean()
    denom = (a.square().sum() * b.square().sum()).sqrt()
    return torch.where(denom > 0, (a * b).sum() / denom.clamp_min(1e-30), torch.zeros_like(denom))


def step_stats(drift: torch.Tensor, potential: torch.Tensor, w_all: torch.Tensor, t_all: torch.Tensor,
               clamp: tuple[float, float] | None) -> StepStats:
    """A step's :class:`StepStats` from its (global) losses and the global batch's weights ``w_all`` and times
    ``t_all``, both (B,); ``clamp``: the bounds the weights were clamped to, if any."""
    diagnostics = weight_diagnostics(w_all, clamp)
    return StepStats(
        drift_loss=drift, potential_loss=potential, w_min=w_all.min(), w_mean=w_all.mean(), w_max=w_all.max(),
        w_std=w_all.std() if len(w_all) > 1 else torch.zeros((), device=w_all.device),
        w_t_corr=_corr(w_all, t_all), w_ratio=diagnostics.ratio, w_ess=diagnostics.ess,
        w_clamped=diagnostics.clamped,
    )


class AGMTrainer(TrainerBase):
    """Owns f, its EMA, V (if any) and the optimisers, and performs one training step (docs/spec.md §4).

    Args:
        f: drift network f_θ(x, t).
        potential: V_φ(x), trained on L_V every step; None when the weighting needs no V.
        weighting: the per-sample weights of L_f (agm.training.weightings: UnitWeights, PotentialWeights,
            TimeTableWeights).
        sigma_max, schedule: the bridge (docs/spec.md §1).
        margin, mu: hinge margin m and L2 regulariser μ of L_V (docs/spec.md §2).
        lr_f, lr_v, betas, weight_decay: AdamW settings of the two optimisers.
        grad_clip: max gradient norm of f (and V); 0 disables clipping.
        ema_decay: EMA decay of f; ema_warmup: its warm-up d_n = min(d, (1 + n) / (10 + n)) (agm.math.ema).
        warmup_steps: linear learning-rate warm-up of both optimisers over this many steps (0: none).
        amp: "none", "bf16" or "fp16" autocast (fp16 uses a GradScaler).
        fused: use fused AdamW (CUDA).
        weight_bins: t-bins of the per-time weight sums S_k, N_k (agm.math.time_bins) the trainer keeps;
            an AGM run's become the time-only control's table.
    """

    def __init__(
        self,
        f: nn.Module,
        potential: nn.Module | None,
        weighting: Weighting,
        *,
        sigma_max: float,
        schedule: Schedule = "cosine",
        margin: float = 1.0,
        mu: float = 0.01,
        lr_f: float = 2e-4,
        lr_v: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        grad_clip: float = 1.0,
        ema_decay: float = 0.9999,
        amp: str = "none",
        fused: bool = False,
        warmup_steps: int = 0,
        ema_warmup: bool = False,
        weight_bins: int = 50,
    ) -> None:
        super().__init__(f, lr=lr_f, betas=betas, weight_decay=weight_decay, grad_clip=grad_clip,
                         ema_decay=ema_decay, amp=amp, fused=fused, warmup_steps=warmup_steps,
                         ema_warmup=ema_warmup)
        self.V, self.V_train = potential, potential  # V_train: the DDP wrapper under torchrun
        self.weighting = weighting
        self.sigma_max, self.schedule, self.margin, self.mu = sigma_max, schedule, margin, mu
        self.opt_v = torch.optim.AdamW(potential.parameters(), lr=lr_v, **self.adamw) if potential else None
        self.weight_by_time = WeightByTime(weight_bins, self.device)

    def wrap_distributed(self) -> None:
        """Wrap f and V in DistributedDataParallel (call after torch.distributed is initialised)."""
        super().wrap_distributed()
        if self.V is not None:
            self.V_train = self._ddp(self.V)

    def step(
        self, x1: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, z: torch.Tensor,
    ) -> StepStats:
        """One AGM step on this process's batch slice; the statistics are the global batch's on every rank.

        Args:
            x1: data in [-1, 1], (b, C, H, W); x0, eps, z: Gaussian noise of the same shape
            (z: the potential's negatives); t: (b,) in [0, 1].
        """
        self._begin_step()
        bridge = sample_bridge(x0, x1, t, eps, self.sigma_max, self.schedule)
        zero = torch.zeros((), device=x1.device)
        joint = self.V is not None and self.weighting.differentiable  # no stop-gradient (Eq. 12)
        loss_v = zero
        if self.V is not None:
            self.opt_v.zero_grad(set_to_none=True)
            with self._autocast():
                v_pair = self.V_train(torch.cat([bridge.x_t, z])).float()
            loss_v = potential_loss(v_pair[: len(z)], v_pair[len(z):], self.margin, self.mu).mean()
            if not joint:  # 2. update V first (docs/spec.md §4 step 2)
                self._optimizer_step(loss_v, self.opt_v, self.V.parameters())
        w_all = self.weighting(bridge.x_t, t)  # 3. (docs/spec.md §4 step 3), over the global batch
        w, w_all, t_all = local_slice(w_all), w_all.detach(), gather(t)
        self.weight_by_time.add(t_all, w_all)  # every rank sums the global batch: rank 0's table is global
        # 4. update f on the weighted drift loss (docs/spec.md §4 step 4)
        self.opt_f.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.f_train(bridge.x_t, t)
        loss_f = (w * drift_loss(out, bridge.target)).mean()
        if joint:  # V's gradient is ∇L_V + ∇L_f, and V takes one clipped step on it
            self.scaler.scale(loss_v + loss_f).backward()
            self._clipped_step(self.opt_f, self.f.parameters())
            self._clipped_step(self.opt_v, self.V.parameters())
        else:
            self._optimizer_step(loss_f, self.opt_f, self.f.parameters())
        self.scaler.update()
        self.ema.update(self.f)
        return step_stats(global_mean(loss_f), global_mean(loss_v), w_all, t_all, self.weighting.clamp)

    def state_dict(self) -> dict[str, Any]:
        weighting = getattr(self.weighting, "state_dict", None)  # a weighting with randomness (shuffled)
        return {**super().state_dict(), "V": self.V.state_dict() if self.V is not None else None,
                "opt_v": self.opt_v.state_dict() if self.opt_v is not None else None,
                "weight_by_time": self.weight_by_time.state_dict(),
                "weighting": weighting() if weighting is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.V is not None:
            self.V.load_state_dict(state["V"])
            self.opt_v.load_state_dict(state["opt_v"])
        self.weight_by_time.load_state_dict(state["weight_by_time"])
        if state["weighting"] is not None:
            self.weighting.load_state_dict(state["weighting"])
