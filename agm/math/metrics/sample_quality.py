"""Feature spaces, named for what they are.

- ``digits``: the penultimate layer of :class:`FeatureNet`, a classifier trained on the default
  dataset's labels. A Fréchet distance there is reported as ``fd_digits``.
- ``inception``: clean-fid's Inception-v3 (weights ``auto`` or a local path,
  :func:`~agm.math.metrics.inception.resolve_inception_weights`). A Fréchet distance there is ``fid``.

The ``features`` stage caches the real images' features in ``<features>/train.npz``; :func:`load_real_features`
reads them back checked against the configured space (and weights), and :meth:`SampleQuality.record` is the
``{distance name: FD, "precision": ..., "recall": ...}`` record every stage writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agm.config.errors import StaleFeaturesError
from agm.config.feature_spaces import DISTANCE_NAMES
from agm.math.metrics.feature_net import extract_features, load_feature_net
from agm.math.metrics.features_io import Features, check_extractor, load_features
from agm.math.metrics.frechet import frechet_distance
from agm.math.metrics.inception import cleanfid_features, load_inception, resolve_inception_weights, weights_digest
from agm.math.metrics.kernel import KERNEL_NAMES, kernel_distance
from agm.math.metrics.precision_recall import precision_recall


def _full_float32(extract: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``extract`` run with float32 matmuls and convolutions at full precision (no TF32), whatever the stage
    switched on for its generator (agm.training.execution.configure_backends): the features, and so the
    distances, do not depend on which stage computed them."""

    def run(images: np.ndarray) -> np.ndarray:
        matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        try:
            return extract(images)
        finally:
            torch.set_float32_matmul_precision(matmul)
            torch.backends.cudnn.allow_tf32 = conv

    return run


def feature_extractor(
    space: str, *, feature_net: str | os.PathLike[str] | None = None,
    inception_weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu", batch_size: int = 500,
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping uint8 images (N, C, H, W) to float32 features (N, D) in ``space``.

    The network is loaded once, here: ``feature_net`` for ``digits``, for ``inception`` clean-fid's
    Inception-v3 from ``inception_weights`` (``"auto"`` or a path, resolved as in :func:`load_real_features`).
    It always runs in full float32 (no TF32), whatever the caller's backend settings.
    """
    if space == "digits":
        net = load_feature_net(feature_net, device=device)
        return _full_float32(lambda images: extract_features(net, images, batch_size=batch_size, device=device))
    if space == "inception":
        model = load_inception(inception_weights, device)
        return _full_float32(lambda images: cleanfid_features(images, model, batch_size=batch_size, device=device))
    raise ValueError(f"unknown feature space {space!r}; expected one of {sorted(DISTANCE_NAMES)}")


def load_real_features(
    features_dir: str | os.PathLike[str], space: str, inception_weights: str | os.PathLike[str]
) -> Features:
    """The real images' features ``features_dir/train.npz``: (N, D) in feature space ``space``.

    Raises :class:`StaleFeaturesError` (a one-line user error) when they are in another space than ``space``
    (``eval.feature_space``) or, for ``inception``, were computed with other weights than the file that
    ``inception_weights`` (``"auto"`` or a path) resolves to holds now: DVC sees only the param's value, so
    the content may have changed behind it. Resolving ``"auto"`` downloads the weights if they are not cached
    yet (or fails on one line offline). Cheap once they are: call it before any expensive work.
    """
    path = Path(features_dir) / "train.npz"
    real = load_features(path)
    if real.space != space:
        raise StaleFeaturesError(f"{path} holds {real.space!r} features but eval.feature_space is {space!r}; "
                                 "re-run the features stage")
    if space == "inception":
        weights = resolve_inception_weights(inception_weights)
        check_extractor(real, path, weights_digest(weights), weights)
    return real


@dataclass(frozen=True)
class SampleQuality:
    """Fréchet distance, improved precision and recall of one sample set against the real features, and the
    kernel distance where it was computed (None otherwise)."""

    distance: float
    precision: float
    recall: float
    n_real: int
    n_fake: int
    kernel_distance: float | None = None

    def record(self, space: str, ndigits: int | None = 4) -> dict[str, float]:
        """``{DISTANCE_NAMES[space]: distance, KERNEL_NAMES[space]: kernel distance, "precision": precision,
        "recall": recall}``, in that order (no kernel distance where it is None), each ``round(value, ndigits)``
        (``ndigits=None``: the values as they are; the kernel distance keeps 4 significant digits instead)."""
        names = [DISTANCE_NAMES[space], "precision", "recall"]
        values = [self.distance, self.precision, self.recall]
        if ndigits is not None:
            values = [round(v, ndigits) for v in values]
        if self.kernel_distance is not None:
            kd = self.kernel_distance
            names.insert(1, KERNEL_NAMES[space])
            values.insert(1, kd if ndigits is None else float(f"{kd:.4g}"))
        return dict(zip(names, values, strict=True))


def sample_quality(real: np.ndarray, fake: np.ndarray, k: int, batch_size: int = 1024,
                   kernel_seed: int | None = None) -> SampleQuality:
    """FD and precision/recall (k nearest neighbours) of fake (M, D) against real (N, D) features; with
    ``kernel_seed``, also the kernel distance (:func:`agm.math.metrics.kernel.kernel_distance`, its subsets drawn
    with that seed)."""
    pr = precision_recall(real, fake, k=k, batch_size=batch_size)
    kd = None if kernel_seed is None else kernel_distance(real, fake, seed=kernel_seed)
    return SampleQuality(distance=frechet_distance(real, fake), precision=pr.precision,
                         recall=pr.recall, n_real=len(real), n_fake=len(fake), kernel_distance=kd)
