"""The Action Matching control's trainer (Neklyudov et al., 2023): one AdamW step on the (AM) objective.

The objective, the action network and its drift live in agm.math.action_matching; this module only trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agm.math.action_matching import action_matching_loss
from agm.math.bridge import Schedule, sample_bridge
from agm.training.distributed import global_mean
from agm.training.trainer_base import TrainerBase


@dataclass(frozen=True)
class ActionStepStats:
    """What one Action Matching step measured: the batch's (AM) objective (it can be < 0), a 0-d tensor."""

    action_loss: torch.Tensor



class ActionMatchingTrainer(TrainerBase):
    """Owns s_θ, its EMA and the optimiser; one step = one AdamW step on (AM). The step interface of
    ``agm.training.agm_trainer.AGMTrainer``, so ``agm.training.loop.train`` runs it unchanged.

    One step: draw the bridge sample x_t from (x0, x1, ε, t) (docs/spec.md §1, Eq. 6), evaluate (AM) with the
    batch's own x0 and x1 as the samples of q_0 and q_1, clip gradients, step, update the EMA.

    Args:
        s: the action network s_θ (an ``ActionNet``).
        sigma_max, schedule: the bridge (docs/spec.md §1).
        lr_f, betas, weight_decay: AdamW settings (named as AGMTrainer's for f).
        grad_clip: max gradient norm; 0 disables clipping.
        ema_decay: EMA decay of s_θ.
        amp: "none", "bf16" or "fp16" autocast around the forward passes of s_θ (fp16 uses a GradScaler,
            which scales the final loss only, not the inner ∇ₓs and ∂_t s).
        fused: use fused AdamW (CUDA).

    Attributes the training loop and stage read: ``f`` (the trained network, s_θ), ``V`` (None: no
    potential), ``ema``, ``state_dict``/``load_state_dict``, ``wrap_distributed``.
    """

    double_backward = True  # the loss differentiates ∇ₓs_θ

    def __init__(
        self,
        s: nn.Module,
        *,
        sigma_max: float,
        schedule: Schedule = "cosine",
        lr_f: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        grad_clip: float = 1.0,
        ema_decay: float = 0.9999,
        amp: str = "none",
        fused: bool = False,
        warmup_steps: int = 0,
        ema_warmup: bool = False,
    ) -> None:
        super().__init__(s, lr=lr_f, betas=betas, weight_decay=weight_decay, grad_clip=grad_clip,
                         ema_decay=ema_decay, amp=amp, fused=fused, warmup_steps=warmup_steps,
                         ema_warmup=ema_warmup)
        self.sigma_max, self.schedule = sigma_max, schedule

    def _action(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """s_θ(x, t) with autocast around the forward pass only (autograd.grad runs outside it)."""
        with self._autocast():
            return self.f_train(x, t)

    def step(
        self, x1: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, z: torch.Tensor,
    ) -> ActionStepStats:
        """One step on this process's batch slice.

        Args:
            x1: data in [-1, 1], (b, C, H, W); x0, eps: Gaussian noise of the same shape; t: (b,) in [0, 1].
            z: the potential's negatives in AGM; unused (no potential). The loss is a plain batch mean, and
                DDP's gradient average over processes makes it the global batch's mean.
        """
        self._begin_step()
        bridge = sample_bridge(x0, x1, t, eps, self.sigma_max, self.schedule)
        self.opt_f.zero_grad(set_to_none=True)
        loss = action_matching_loss(self._action, x0, x1, bridge.x_t, t).mean()
        self._optimizer_step(loss, self.opt_f, self.f.parameters())
        self.scaler.update()
        self.ema.update(self.f)
        return ActionStepStats(action_loss=global_mean(loss))
