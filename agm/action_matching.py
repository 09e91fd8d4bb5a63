"""Action Matching (Neklyudov et al., 2023): a baseline for AGM that learns a scalar action s_θ(x, t).

On the marginals q_t of the cosine bridge (spec §1; x_t = α(t) x0 + β(t) x1 + σ(t) ε, with q_0 = N(0, I)
the noise at t = 0 and q_1 the data at t = 1), s_θ is trained on the action-matching objective

    L(θ) = E_{x~q_0}[s_θ(x, 0)] − E_{x~q_1}[s_θ(x, 1)]
           + E_{t~U[0,1], x~q_t}[ ½‖∇ₓs_θ(x, t)‖² + ∂_t s_θ(x, t) ]                         (AM)

and sampled with the same Euler–Maruyama integrator as AGM (spec §6), with the drift ∇ₓs_θ.
Why it works: if ∇ₓs* is the gradient velocity field of the continuity equation
∂_t q_t + ∇·(q_t ∇ₓs*) = 0, integrating ∂_t s by parts in t and x gives

    L(θ) = ½ ∫₀¹ E_{q_t} ‖∇ₓs_θ − ∇ₓs*‖² dt − ½ ∫₀¹ E_{q_t} ‖∇ₓs*‖² dt,

so L is minimised exactly where ∇ₓs_θ = ∇ₓs*, and there it equals minus the kinetic energy of the flow
(a negative number). ‖·‖² is the sum over pixels: with a mean over the D pixels instead (as L_f uses) the
minimiser would be D ∇ₓs*, not the velocity. Unlike L_f the objective is not ≥ 0; it is 0 at s ≡ 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from agm.bridge import Schedule, sample_bridge
from agm.nets import DriftUNet
from agm.train import TrainerBase, global_mean


@dataclass(frozen=True)
class ActionStepStats:
    """What one Action Matching step measured: the batch's (AM) objective (it can be < 0), a 0-d tensor."""

    action_loss: torch.Tensor


Action = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""s(x: (B, ...), t: (B,)) → (B,), each output depending on its own sample only."""


class ActionNet(nn.Module):
    """s_θ(x, t) = ⟨u_θ(x, κ t), x⟩ (sum over C, H, W): (B, C, H, W), (B,) → (B,).

    u_θ is the drift U-Net of spec §5 (``DriftUNet``, built from the same keyword arguments), so AM and
    AGM share one body; only the scalar head differs. Why this head:

    - it is general: every smooth s with s(0, t) = 0 is ⟨ū(x, t), x⟩ with ū = ∫₀¹ ∇ₓs(τx, t) dτ, and
      pinning s(0, t) = 0 fixes the additive c(t) that L leaves free (whose ∂_t c only adds noise);
    - its gradient is the drift head plus a correction, ∇ₓs = u_θ + (∂ₓu_θ)ᵀ x; where u_θ does not
      depend on x it is exactly the drift, so the field starts where AGM's does: DriftUNet's zero-initialised
      output conv gives s ≡ 0, ∇ₓs ≡ 0 at initialisation, and L's gradient on that conv is not zero
      (its terms ∂_t s and s(x0, 0) − s(x1, 1) are linear in it), so training starts;
    - the alternatives are worse: −½‖u_θ‖² is ≤ 0, cannot represent the linear part m'(t)·x of a
      Gaussian flow's action, and has zero gradient in every parameter at the zero-initialised output;
      a pooled scalar readout has no per-pixel output, so the velocity would exist only as the body's
      input gradient.

    Time enters the U-Net as κ t (``time_scale`` κ, default 0.01). (AM) contains ∂_t s, and a time
    feature of frequency ω contributes ω times its amplitude to ∂_t s: DriftUNet's sinusoidal embedding
    of 1000 t reaches ω = 1000 per unit t, and with it the Monte Carlo noise of ∂_t s swamps the
    objective. Measured (tiny U-Net, 8x8 toy images, batch 32, lr 2e-4, 500 steps), E‖∇ₓs − v_t‖² went
    162 → 135 at κ = 1, → 85 at κ = 0.1, → 59 at κ = 0.01 (highest frequency 10) and κ = 0.001;
    bridge matching's ‖f − v_t‖² (the AGM baseline) went 162 → 81. The U-Net body is unchanged.

    The loss differentiates ∇ₓs again (``action_matching_loss``). The fused attention kernels have no
    double backward (on the CPU: "derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward
    is not implemented"), so the U-Net's attention runs on the math backend here.

    Args:
        time_scale: κ, the factor on t before the U-Net's time embedding.
        **unet_kwargs: the ``DriftUNet`` arguments (spec §5).
    """

    def __init__(self, *, time_scale: float = 0.01, **unet_kwargs: Any) -> None:
        super().__init__()
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self.u = DriftUNet(**unet_kwargs)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            u = self.u(x, self.time_scale * t)
        acc = torch.promote_types(x.dtype, torch.float32)  # float32 at least, also under autocast
        return (u.to(acc) * x.to(acc)).flatten(1).sum(1)


def action_matching_loss(
    s: Action, x0: torch.Tensor, x1: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Per-sample terms of (AM); ``.mean()`` of the result is the Monte Carlo estimate of L(θ).

        ℓ_i = s(x0_i, 0) − s(x1_i, 1) + ½‖∇ₓs(x_t,i, t_i)‖² + ∂_t s(x_t,i, t_i)

    ∇ₓs and ∂_t s come from autograd with ``create_graph=True``, so ℓ can be differentiated in s's
    parameters. The loss assumes the endpoints and x_t are drawn from q_0, q_1 and q_t (they may be
    the same bridges: E[ℓ] is a sum of three expectations).

    Args:
        s: the action, e.g. an ``ActionNet`` or any differentiable callable (``Action``).
        x0: noise, a sample of q_0, (B, ...).
        x1: data, a sample of q_1, (B, ...).
        x_t: a sample of q_t at times t, (B, ...).
        t: times in [0, 1], (B,).

    Returns:
        (B,) per-sample loss in x_t's dtype, float32 at least; it can be negative.
    """
    acc = torch.promote_types(x_t.dtype, torch.float32)
    x_t = x_t.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    ds_dx, ds_dt = torch.autograd.grad(s(x_t, t).sum(), (x_t, t), create_graph=True,
                                       materialize_grads=True)
    b = len(x0)
    ends = s(torch.cat([x0, x1]), torch.cat([t.new_zeros(b), t.new_ones(b)])).to(acc)
    kinetic = 0.5 * ds_dx.to(acc).square().flatten(1).sum(1)
    return ends[:b] - ends[b:] + kinetic + ds_dt.to(acc)


class ActionDrift(nn.Module):
    """The drift ∇ₓs(x, t) of an action s, for ``agm.sampler.euler_maruyama``: (B, C, H, W), (B,) → (B, C, H, W).

    The sampler runs under ``torch.no_grad``; the gradient is taken with grad mode re-enabled and
    returned detached (not under ``torch.inference_mode``, where no gradient can be taken).
    """

    def __init__(self, s: Action) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (ds_dx,) = torch.autograd.grad(self.s(x, t.detach()).sum(), x)
        return ds_dx.detach()


class ActionMatchingTrainer(TrainerBase):
    """Owns s_θ, its EMA and the optimiser; one step = one AdamW step on (AM). The step interface of
    ``agm.train.AGMTrainer``, so ``agm.train.train`` runs it unchanged.

    One step: draw the bridge sample x_t from (x0, x1, ε, t) (spec §1, Eq. 6), evaluate (AM) with the
    batch's own x0 and x1 as the samples of q_0 and q_1, clip gradients, step, update the EMA.

    Args:
        s: the action network s_θ (an ``ActionNet``).
        sigma_max, schedule: the bridge (spec §1).
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
    ) -> None:
        super().__init__(s, lr=lr_f, betas=betas, weight_decay=weight_decay, grad_clip=grad_clip,
                         ema_decay=ema_decay, amp=amp, fused=fused)
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
        bs = sample_bridge(x0, x1, t, eps, self.sigma_max, self.schedule)
        self.opt_f.zero_grad(set_to_none=True)
        loss = action_matching_loss(self._action, x0, x1, bs.x_t, t).mean()
        self._optimizer_step(loss, self.opt_f, self.f.parameters())
        self.scaler.update()
        self.ema.update(self.f)
        return ActionStepStats(action_loss=global_mean(loss))

    def state_dict(self) -> dict[str, Any]:
        return {"s": self.f.state_dict(), "ema": self.ema.model.state_dict(), "opt": self.opt_f.state_dict(),
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.f.load_state_dict(state["s"])
        self.ema.model.load_state_dict(state["ema"])
        self.opt_f.load_state_dict(state["opt"])
        self.scaler.load_state_dict(state["scaler"])
