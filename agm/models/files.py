"""Model files: a trained network's EMA weights and constructor arguments, for sampling and the report.

Unlike a training checkpoint (agm.training.checkpoints: the state a run resumes from), a model file is what a
finished run leaves for sampling and the report, and knows the network classes: it rebuilds f_θ (a
``DriftUNet``), an Action Matching action s_θ (whose drift is ∇ₓs_θ) or the potential V_φ. It holds what
rebuilds the networks and nothing of how they were trained (λ and the rest are in the run's identity).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from agm.math.action_matching import ActionDrift, ActionNet
from agm.math.nets import DriftUNet, Potential
from agm.training.checkpoints import load_checkpoint, save_checkpoint


def save_model(path: str | os.PathLike[str], *, ema: dict[str, Any], unet: dict[str, Any],
               potential: dict[str, Any] | None, potential_kwargs: dict[str, Any] | None,
               step: int, kind: str = "drift", time_scale: float | None = None) -> None:
    """Write a trained model: the EMA network's weights and constructor arguments, and V if it exists.

    ``kind`` is "drift" (f_θ(x, t), every AGM-trainer variant) or "action" (an Action Matching s_θ(x, t),
    whose drift is ∇ₓs_θ; ``time_scale`` is its κ, part of the network).
    """
    if kind not in ("drift", "action"):
        raise ValueError(f"kind must be 'drift' or 'action', got {kind!r}")
    if (kind == "action") != (time_scale is not None):
        raise ValueError("an action model needs its time_scale κ, and only an action model has one")
    save_checkpoint(path, {"ema": ema, "unet": unet, "potential": potential, "kind": kind,
                           "potential_kwargs": potential_kwargs, "step": step, "time_scale": time_scale})


def load_drift(path: str | os.PathLike[str], device: torch.device | str = "cpu",
               state: dict[str, Any] | None = None) -> torch.nn.Module:
    """The EMA drift of a model file (or of ``state``, an EMA snapshot's weights): f_EMA, or ∇ₓs_EMA."""
    model = load_checkpoint(path)
    if model.get("kind", "drift") == "action":
        s = ActionNet(time_scale=model["time_scale"], **model["unet"])
        s.load_state_dict(state if state is not None else model["ema"])
        return ActionDrift(s.to(device).eval().requires_grad_(False))
    f = DriftUNet(**model["unet"])
    f.load_state_dict(state if state is not None else model["ema"])
    return f.to(device).eval().requires_grad_(False)


def image_shape(model: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of the images a model file (as loaded by load_checkpoint) generates."""
    unet = model["unet"]
    return (unet["in_channels"], unet["resolution"], unet["resolution"])


def has_potential(path: str | os.PathLike[str]) -> bool:
    """Whether a model file holds a potential V (an AGM-trainer run with V; not the baseline, nor AGM at λ = 0)."""
    return load_checkpoint(path)["potential"] is not None


def load_potential(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained potential V of a model file; an error for a baseline model, which has none."""
    model = load_checkpoint(path)
    if model["potential"] is None:
        raise ValueError(f"{path} is a model without a potential V (the baseline, or AGM at lambda = 0)")
    V = Potential(**model["potential_kwargs"])
    V.load_state_dict(model["potential"])
    return V.to(device).eval().requires_grad_(False)
