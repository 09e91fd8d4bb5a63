"""Training checkpoints: one dict of state dicts + step + RNG states + config, written atomically.

A checkpoint belongs to one training configuration. :func:`config_digest` names the folder that holds a
configuration's checkpoints, so a changed configuration starts a fresh run instead of resuming a stale
one, and :func:`load_checkpoint` refuses a file whose stored configuration differs from the expected one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from agm.io import save_torch

LATEST = "latest.pt"


class CheckpointMismatchError(ValueError):
    """A checkpoint's stored configuration differs from the run's."""


def config_digest(config: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """torch.save ``state`` to ``path`` atomically (temporary file, fsync, rename); see :func:`save_torch`."""
    save_torch(state, path)


def load_checkpoint(path: str | os.PathLike[str], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a checkpoint; with ``config``, refuse one whose stored config differs (naming the keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointMismatchError(f"checkpoint {path} is unreadable: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict")
    if config is not None and state.get("config") != config:
        stored = state.get("config") or {}
        keys = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for a different configuration (differs in: "
            f"{', '.join(keys)}); delete it or restore those values to resume"
        )
    return state


def save_model(path: str | os.PathLike[str], *, ema: dict[str, Any], unet: dict[str, Any],
               potential: dict[str, Any] | None, potential_kwargs: dict[str, Any] | None,
               step: int, lam: float, kind: str = "drift", time_scale: float | None = None) -> None:
    """Write a trained model: the EMA network's weights and constructor arguments, and V if it exists.

    ``kind`` is "drift" (f_θ(x, t), every AGM-trainer variant) or "action" (an Action Matching s_θ(x, t),
    whose drift is ∇ₓs_θ; ``time_scale`` is its κ, part of the network).
    """
    if kind not in ("drift", "action"):
        raise ValueError(f"kind must be 'drift' or 'action', got {kind!r}")
    if (kind == "action") != (time_scale is not None):
        raise ValueError("an action model needs its time_scale κ, and only an action model has one")
    save_checkpoint(path, {"ema": ema, "unet": unet, "potential": potential, "kind": kind,
                           "potential_kwargs": potential_kwargs, "step": step, "lambda": lam,
                           "time_scale": time_scale})


def load_drift(path: str | os.PathLike[str], device: torch.device | str = "cpu",
               state: dict[str, Any] | None = None) -> torch.nn.Module:
    """The EMA drift of a model file (or of ``state``, an EMA snapshot's weights): f_EMA, or ∇ₓs_EMA."""
    from agm.nets import DriftUNet

    model = load_checkpoint(path)
    if model.get("kind", "drift") == "action":
        from agm.action_matching import ActionDrift, ActionNet

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


def load_potential(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained potential V of a model file; an error for a baseline model, which has none."""
    from agm.nets import Potential

    model = load_checkpoint(path)
    if model["potential"] is None:
        raise ValueError(f"{path} is a baseline model (lambda = 0): it has no potential V")
    V = Potential(**model["potential_kwargs"])
    V.load_state_dict(model["potential"])
    return V.to(device).eval().requires_grad_(False)
