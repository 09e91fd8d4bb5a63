"""Saliency of the potential on bridge samples (paper §6.5, Fig. 5).

For images x1 in [-1, 1] and a time t, a bridge sample (Eq. 6, :mod:`agm.math.bridge`) is

    x_t = α(t) x0 + β(t) x1 + σ(t) ε,        x0, ε ~ N(0, I),

and the saliency of the trained potential V_φ at x_t is the magnitude of its input gradient,
summed over the colour channels c:

    S(x_t)[h, w] = Σ_c |∂V_φ(x_t) / ∂x_t[c, h, w]|.

Shapes: x1, x0, ε and x_t are (B, C, H, W); V_φ maps (B, C, H, W) → (B,); S is (B, H, W), non-negative.
Because V is summed over the batch before differentiating and each V(x_t[i]) depends only on its own
image, row i of the gradient is ∇ₓV(x_t[i]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agm.math.bridge import Schedule, sample_bridge


def potential_saliency(V: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """S(x) = Σ_c |∂V(x)/∂x_c|: x (B, C, H, W) → (B, H, W), non-negative; V's parameters are untouched."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(V(x).sum(), x)
    return grad.abs().sum(dim=1)


def bridge_at(x1: torch.Tensor, t: float, sigma_max: float, generator: torch.Generator,
              schedule: Schedule = "cosine") -> torch.Tensor:
    """Bridge samples x_t = α(t) x0 + β(t) x1 + σ(t) ε (Eq. 6) of images x1 (B, C, H, W) in [-1, 1] at one t.

    x0 and then ε (each (B, C, H, W)) are drawn from ``generator`` in that order; returns x_t (B, C, H, W).
    """
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
    eps = torch.randn(x1.shape, generator=generator, device=x1.device)
    tt = torch.full((len(x1),), t, device=x1.device)
    return sample_bridge(x0, x1, tt, eps, sigma_max, schedule).x_t


def saliency_at_times(V: nn.Module, x1: torch.Tensor, times: Sequence[float], sigma_max: float,
                      generator: torch.Generator, schedule: Schedule = "cosine",
                      ) -> tuple[dict[float, torch.Tensor], dict[float, torch.Tensor]]:
    """Bridge samples of x1 (B, C, H, W) at each t in ``times`` and their saliency, as Fig. 5 shows them.

    The times are visited in the given order, each drawing fresh x0 and ε from ``generator``.

    Returns:
        (t -> x_t of shape (B, C, H, W), t -> S(x_t) of shape (B, H, W)).
    """
    x_t, saliency = {}, {}
    for t in times:
        x_t[t] = bridge_at(x1, t, sigma_max, generator, schedule)
        saliency[t] = potential_saliency(V, x_t[t])
    return x_t, saliency
