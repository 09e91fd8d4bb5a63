"""Feature spaces, named for what they are.

- ``digits``: the penultimate layer of :class:`FeatureNet`, a classifier trained on the default
  dataset's labels. A Fréchet distance there is reported as ``fd_digits``.
- ``inception``: clean-fid's Inception-v3 (local weights). A Fréchet distance there is ``fid``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from agm.metrics.feature_net import extract_features, load_feature_net
from agm.metrics.frechet import frechet_distance
from agm.metrics.inception import inception_features
from agm.metrics.precision_recall import precision_recall

DISTANCE_NAMES = {"digits": "fd_digits", "inception": "fid"}
DESCRIPTIONS = {
    "digits": "Fréchet distance in the 64-D penultimate features of a digit classifier trained in the "
              "`features` stage (not FID: no Inception network is involved)",
    "inception": "FID: Fréchet distance in clean-fid's Inception-v3 pool features",
}


def feature_extractor(
    space: str, *, feature_net: str | os.PathLike[str] | None = None,
    inception_weights: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu", batch_size: int = 500,
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping uint8 images (N, C, H, W) to float32 features (N, D) in ``space``."""
    if space == "digits":
        net = load_feature_net(feature_net, device=device)
        return lambda images: extract_features(net, images, batch_size=batch_size, device=device)
    if space == "inception":
        return lambda images: inception_features(images, inception_weights, batch_size=batch_size,
                                                 device=device)
    raise ValueError(f"unknown feature space {space!r}; expected one of {sorted(DISTANCE_NAMES)}")


@dataclass(frozen=True)
class SampleQuality:
    """Fréchet distance, improved precision and recall of one sample set against the real features."""

    distance: float
    precision: float
    recall: float
    n_real: int
    n_fake: int


def sample_quality(real: np.ndarray, fake: np.ndarray, k: int, batch_size: int = 1024) -> SampleQuality:
    """FD and precision/recall (k nearest neighbours) of fake (M, D) against real (N, D) features."""
    pr = precision_recall(real, fake, k=k, batch_size=batch_size)
    return SampleQuality(distance=frechet_distance(real, fake), precision=pr.precision,
                         recall=pr.recall, n_real=len(real), n_fake=len(fake))
