"""Feature caches: one ``.npz`` per (image set, feature space), written atomically.

Layout: ``features`` float32 (N, D), ``space`` (str, e.g. ``"digits"`` or ``"inception"``),
``count`` (int, = N, checked on load).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from agm.io import atomic_path


@dataclass(frozen=True)
class Features:
    """Features of one image set: ``features: (N, D)`` float32 in feature space ``space``."""

    features: np.ndarray
    space: str

    @property
    def count(self) -> int:
        return int(self.features.shape[0])


def _check(feats: np.ndarray, space: str) -> np.ndarray:
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, D) array, got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise ValueError("features contain NaN or infinite values")
    if not space:
        raise ValueError("feature space name must be a non-empty string")
    return feats.astype(np.float32, copy=False)


def save_features(path: str | os.PathLike[str], feats: np.ndarray, space: str) -> None:
    """Atomically write ``feats: (N, D)`` (stored as float32) with its feature space name."""
    feats = _check(feats, space)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file object, not a name: np.savez would append ".npz" to the temporary name.
        np.savez(fh, features=feats, space=np.array(space), count=np.array(feats.shape[0]))


def load_features(path: str | os.PathLike[str]) -> Features:
    """Read a file written by :func:`save_features`, checking its count against the array."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"features", "space", "count"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a features file, missing {sorted(missing)}")
        feats = data["features"]
        space = str(data["space"])
        count = int(data["count"])
    if feats.ndim != 2 or feats.shape[0] != count:
        raise ValueError(f"{path}: features shape {feats.shape} does not match count {count}")
    return Features(features=_check(feats, space), space=space)
