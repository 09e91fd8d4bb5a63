"""What every trainer shares: the trained network, its EMA, its AdamW, autocast and the GradScaler.

A trainer owns its networks and optimisers and performs one step, ``step(x1, x0, eps, t, z)``, returning a
frozen dataclass of 0-d tensors named for what it measures; ``agm.training.loop.train`` runs any of them.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from agm.math.ema import EMA

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainerBase:
    """The trained network f, its EMA and AdamW, autocast and the GradScaler.

    ``f_train`` is the module a step calls: f itself, or its DistributedDataParallel wrapper under torchrun.
    A trainer without a potential keeps ``V``, ``V_train`` and ``opt_v`` at None.
    """

    V: nn.Module | None = None
    V_train: nn.Module | None = None
    opt_v: torch.optim.Optimizer | None = None
    double_backward = False
    """Whether the step differentiates a gradient again (Action Matching): then it runs eagerly in the
    default memory format (agm.training.execution.apply_execution), since torch.compile has no double backward."""

    def __init__(self, f: nn.Module, *, lr: float, betas: tuple[float, float], weight_decay: float,
                 grad_clip: float, ema_decay: float, amp: str, fused: bool, warmup_steps: int = 0,
                 ema_warmup: bool = False) -> None:
        self.f = self.f_train = f
        self.grad_clip, self.warmup_steps, self.steps_done = grad_clip, warmup_steps, 0
        self.ema = EMA(f, ema_decay, warmup=ema_warmup)
        self.adamw: dict[str, Any] = dict(betas=betas, weight_decay=weight_decay, fused=fused or None)
        self.opt_f = torch.optim.AdamW(f.parameters(), lr=lr, **self.adamw)
        self.amp_dtype = AMP_DTYPES[amp]
        self.device = next(f.parameters()).device
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")

    def _begin_step(self) -> None:
        """Set every optimiser's learning rate for this step, lr · min(1, (n + 1) / warmup_steps) for the
        n-th step (a linear warm-up, then constant), and count the step."""
        factor = min(1.0, (self.steps_done + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        for opt in (self.opt_f, self.opt_v):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
        self.steps_done += 1

    def state_dict(self) -> dict[str, Any]:
        """What every trainer checkpoints: f, its EMA (with its update count), its optimiser, the scaler."""
        return {"f": self.f.state_dict(), "ema": self.ema.model.state_dict(), "ema_updates": self.ema.updates,
                "opt_f": self.opt_f.state_dict(), "scaler": self.scaler.state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.f.load_state_dict(state["f"])
        self.ema.model.load_state_dict(state["ema"])
        self.ema.updates = state["ema_updates"]
        self.opt_f.load_state_dict(state["opt_f"])
        self.scaler.load_state_dict(state["scaler"])
        self.steps_done = state["steps_done"]

    def _ddp(self, module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def wrap_distributed(self) -> None:
        """Wrap f in DistributedDataParallel (call after torch.distributed is initialised)."""
        self.f_train = self._ddp(self.f)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _optimizer_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params) -> None:
        self.scaler.scale(loss).backward()
        self._clipped_step(opt, params)

    def _clipped_step(self, opt: torch.optim.Optimizer, params) -> None:
        """Step ``opt`` on the gradients already accumulated, clipped to ``grad_clip`` (0: unclipped)."""
        if self.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)
