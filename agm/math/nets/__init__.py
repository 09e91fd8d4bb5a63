"""The two networks of AGM: the drift U-Net f_θ and the potential V_φ (docs/spec.md §5).

Their sizes come from the params files: the paper's networks are `profiles/paper.yaml`'s `model` and
`potential` sections (45.3M and 0.72M parameters; tests/test_nets.py counts them).
"""

from __future__ import annotations

from torch import nn

from agm.math.nets.potential import Potential
from agm.math.nets.unet import DriftUNet


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["DriftUNet", "Potential", "count_parameters"]
