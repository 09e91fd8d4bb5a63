"""Saliency of the potential: |∇ₓ V(x_t)| on bridge samples (paper §6.5, Fig. 5)."""

from __future__ import annotations

import torch
from torch import nn

from agm.bridge import Schedule, sample_bridge


def potential_saliency(V: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """|∇ₓ V(x)| summed over channels: x (B, C, H, W) → (B, H, W), non-negative."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(V(x).sum(), x)
    return grad.abs().sum(dim=1)


def bridge_at(x1: torch.Tensor, t: float, sigma_max: float, generator: torch.Generator,
              schedule: Schedule = "cosine") -> torch.Tensor:
    """Bridge samples x_t (Eq. 6) of images x1 (B, C, H, W) in [-1, 1] at one time t."""
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
    eps = torch.randn(x1.shape, generator=generator, device=x1.device)
    tt = torch.full((len(x1),), t, device=x1.device)
    return sample_bridge(x0, x1, tt, eps, sigma_max, schedule).x_t
