"""Feature caches: one ``.npz`` per (image set, feature space), written atomically.

Layout: ``features`` float32 (N, D), ``space`` (str, e.g. ``"digits"`` or ``"inception"``),
``count`` (int, = N, checked on load), ``extractor`` (str: sha256 of the external weights file the
features were computed with, e.g. the Inception-v3 TorchScript file; ``""`` when there is none, as
for ``digits``, whose network is saved beside the features).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from agm.config.errors import DataError, StaleFeaturesError
from agm.io.atomic import atomic_path

_FIELDS = frozenset({"features", "space", "count", "extractor"})


@dataclass(frozen=True)
class Features:
    """Features of one image set: ``features: (N, D)`` float32 in feature space ``space``.

    ``extractor``: sha256 of the weights file that computed them, ``""`` if none.
    """

    features: np.ndarray
    space: str
    extractor: str = ""

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


def save_features(path: str | os.PathLike[str], feats: np.ndarray, space: str, extractor: str = "") -> None:
    """Atomically write ``feats: (N, D)`` (stored as float32) with its feature space name and the
    sha256 ``extractor`` of the weights file that computed them (``""``: no external weights)."""
    feats = _check(feats, space)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file object, not a name: np.savez would append ".npz" to the temporary name.
        np.savez(fh, features=feats, space=np.array(space), count=np.array(feats.shape[0]),
                 extractor=np.array(extractor))


def load_features(path: str | os.PathLike[str]) -> Features:
    """Read a file written by :func:`save_features`, checking its count against the array.

    A file without the ``extractor`` field predates the weights check: the error says to re-run the
    features stage.
    """
    with np.load(path, allow_pickle=False) as data:
        missing = _FIELDS - set(data.files)
        if missing:
            raise DataError(f"{path}: not a current features file, missing {sorted(missing)}; "
                             "re-run the features stage")
        feats = data["features"]
        space = str(data["space"])
        count = int(data["count"])
        extractor = str(data["extractor"])
    if feats.ndim != 2 or feats.shape[0] != count:
        raise ValueError(f"{path}: features shape {feats.shape} does not match count {count}")
    return Features(features=_check(feats, space), space=space, extractor=extractor)


def check_extractor(
    feats: Features, path: str | os.PathLike[str], digest: str, weights_path: str | os.PathLike[str]
) -> None:
    """Raise :class:`StaleFeaturesError` unless ``feats`` (read from ``path``) were computed with the
    weights whose sha256 is ``digest`` (those now at ``weights_path``).

    Call it before any expensive work: features from two different networks are not comparable.
    """
    if feats.extractor != digest:
        stored = feats.extractor or "none recorded"
        raise StaleFeaturesError(
            f"{path} was computed with weights sha256 {stored}, but {weights_path} now has sha256 "
            f"{digest}; re-run the features stage"
        )
