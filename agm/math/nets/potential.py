"""The potential V_φ(x): a small scalar CNN with no time input (docs/spec.md §5, paper §4.2, §4.6).

    3 × [Conv 3x3, stride 2 → GroupNorm → GELU] → adaptive average pool → flatten → linear → scalar

≈0.7M parameters at widths (96, 192, 320) with 2x2 pooling (≈1.4% of the paper's f).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class Potential(nn.Module):
    """V_φ: (B, C, H, W) → (B,).

    Args:
        in_channels: image channels C.
        widths: output channels of the three stride-2 convolutions.
        pool: side of the adaptive average pool before the linear head.
        groups: GroupNorm groups (reduced to a divisor of the width where needed).
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int] = (96, 192, 320), pool: int = 2, groups: int = 8
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.GroupNorm(math.gcd(groups, w), w), nn.GELU()]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool), nn.Flatten())
        self.head = nn.Linear(c * pool * pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)
