"""Action Matching (Neklyudov et al., 2023), a control for AGM: a scalar action s_θ(x, t) on the bridge's marginals.

    L(θ) = E_{q_0}[s_θ(x, 0)] − E_{q_1}[s_θ(x, 1)] + E_{t, q_t}[ ½‖∇ₓs_θ(x, t)‖² + ∂_t s_θ(x, t) ]     (AM)

minimised where ∇ₓs_θ is the velocity of the bridge's flow (‖·‖²: the sum over pixels); samples follow
the drift ∇ₓs_θ with AGM's Euler–Maruyama sampler (docs/spec.md §6). The derivation, the choice of head
and the measured time scale κ: docs/notes/action-matching.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from agm.math.nets import DriftUNet

Action = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""s(x: (B, ...), t: (B,)) → (B,), each output depending on its own sample only."""

TIME_SCALE = 0.01
"""κ, the factor on t before the U-Net's time embedding (docs/notes/action-matching.md)."""


class ActionNet(nn.Module):
    """s_θ(x, t) = ⟨u_θ(x, κ t), x⟩ (sum over C, H, W): (B, C, H, W), (B,) → (B,).

    u_θ is the drift U-Net (``DriftUNet``, docs/spec.md §5), so Action Matching and AGM share one body. Time
    enters as κ t (``time_scale`` κ = 0.01: (AM) contains ∂_t s, and the embedding's high frequencies
    would swamp it; docs/notes/action-matching.md gives the measurement). The loss differentiates ∇ₓs
    again and the fused attention kernels have no double backward, so attention runs on the math backend.

    Args:
        time_scale: κ, the factor on t before the U-Net's time embedding.
        **unet_kwargs: the ``DriftUNet`` arguments.
    """

    def __init__(self, *, time_scale: float = TIME_SCALE, **unet_kwargs: Any) -> None:
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
    """The drift ∇ₓs(x, t) of an action s, for ``agm.math.solver.euler_maruyama``: (B, C, H, W), (B,) → (B, C, H, W).

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
