"""Training-state files: one dict of state dicts + step + RNG states + config, written atomically.

A checkpoint belongs to one run: its ``config`` is the run's whole identity (the configuration, and where
the training stage builds it, a content hash of the training data and of the code it executes; see
agm.provenance). Resuming is for a run that was interrupted: :func:`resume_state` hands back a checkpoint
only when its identity equals the run's and it is not past the requested step; anything else trains from
step 0, and :func:`clear_run` removes the other run's files so they are never reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from agm.io import save_torch

LATEST = "latest.pt"


class CheckpointMismatchError(ValueError):
    """A checkpoint's stored configuration differs from the run's."""


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
        keys = config_differences(state.get("config") or {}, config)
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for a different configuration (differs in: "
            f"{', '.join(keys)}); delete it or restore those values to resume"
        )
    return state


def config_differences(stored: dict[str, Any], config: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested configurations, sorted."""
    keys = []
    for key in sorted(set(stored) | set(config)):
        a, b = stored.get(key), config.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def resume_state(ckpt_dir: str | os.PathLike[str], config: dict[str, Any],
                 steps: int) -> tuple[dict[str, Any] | None, str]:
    """The checkpoint a run may resume from, or None and why not.

    A run resumes from ``ckpt_dir/latest.pt`` only if that file was written by the same run: an equal
    ``config`` (its whole identity) and a step not past ``steps`` (a longer run's model is never
    returned for a shorter one).

    Returns:
        (state, "") to resume; (None, reason) to train from step 0. The reason is "" when there is no
        checkpoint at all.
    """
    path = Path(ckpt_dir) / LATEST
    if not path.exists():
        return None, ""
    try:
        state = load_checkpoint(path)
    except CheckpointMismatchError as exc:
        return None, str(exc)
    if state.get("config") != config:
        keys = config_differences(state.get("config") or {}, config)
        return None, f"{path} belongs to another run (differs in: {', '.join(keys)})"
    if state.get("step", 0) > steps:
        return None, f"{path} is at step {state['step']}, past the {steps} steps asked for"
    return state, ""


def clear_run(ckpt_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove a run's files from ``ckpt_dir`` (``latest.pt``, EMA snapshots, stray temporaries); return them."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    gone = [p for p in ckpt_dir.iterdir()
            if p.is_file() and (p.name == LATEST or p.name.startswith("ema_") or p.name.endswith(".tmp"))]
    for p in gone:
        p.unlink()
    return gone
