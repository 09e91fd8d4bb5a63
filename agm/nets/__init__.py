"""The two networks of AGM: the drift U-Net f_θ and the potential V_φ (spec §5)."""

from __future__ import annotations

from torch import nn

from agm.nets.potential import Potential
from agm.nets.unet import DriftUNet

# The paper's networks (spec §5). Channel multipliers are not stated in the paper: (1, 2, 3) with
# 2 ResBlocks per encoder scale and 3 per decoder scale lands f in the 45-55M range the paper's
# "≈50M" asks for (tests/test_nets.py checks the count).
PAPER_UNET = dict(
    in_channels=3, resolution=64, base_channels=128, channel_mult=(1, 2, 3), num_res_blocks=2,
    attn_resolutions=(32, 16), time_embed_dim=256, head_channels=64, dropout=0.0, groups=32,
)
PAPER_POTENTIAL = dict(in_channels=3, widths=(96, 192, 320), pool=2, groups=8)


def paper_unet() -> DriftUNet:
    """The paper's ≈50M-parameter drift U-Net for 64x64x3 images."""
    return DriftUNet(**PAPER_UNET)


def paper_potential() -> Potential:
    """The paper's ≈0.7M-parameter potential for 64x64x3 images."""
    return Potential(**PAPER_POTENTIAL)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "DriftUNet", "Potential", "paper_unet", "paper_potential", "count_parameters", "PAPER_UNET", "PAPER_POTENTIAL",
]
