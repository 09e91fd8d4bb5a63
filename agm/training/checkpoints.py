"""Training-state files: one dict of state dicts + step + RNG states + config, written atomically.

A checkpoint belongs to one run: its ``config`` is the run's whole identity (the configuration, and where
the training stage builds it, the content hashes of the training data and of the code it executes and the
library versions; agm.io.provenance, agm.training.run_state). Resuming is for a run that was interrupted:
:func:`resume_state` hands back a checkpoint only when its identity equals the run's and it is not past the
requested step, and refuses anything else; nothing here deletes a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from agm.config.errors import CheckpointMismatchError
from agm.io.atomic import save_torch

LATEST = "latest.pt"


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


def resume_state(ckpt_dir: str | os.PathLike[str], config: dict[str, Any], steps: int) -> dict[str, Any] | None:
    """The checkpoint a run resumes from: ``ckpt_dir/latest.pt``, or None when there is none (step 0).

    A state folder holds one run (agm.training.run_state keys it by the identity), so a ``latest.pt`` of another
    ``config`` (its whole identity), one past ``steps`` (a longer run's model is never returned for a shorter
    one) or an unreadable one is refused with :class:`CheckpointMismatchError`, naming the file; it is never
    deleted or overwritten.
    """
    path = Path(ckpt_dir) / LATEST
    if not path.exists():
        return None
    state = load_checkpoint(path)
    if state.get("config") != config:
        keys = config_differences(state.get("config") or {}, config)
        raise CheckpointMismatchError(
            f"{path} belongs to another run (differs in: {', '.join(keys)}); a state folder holds one run")
    if state.get("step", 0) > steps:
        raise CheckpointMismatchError(f"{path} is at step {state['step']}, past the {steps} steps asked for")
    return state
