"""A small CNN classifier whose penultimate layer is the default profile's feature space.

Inception-v3 features are meaningless on 16x16 grey digits, so the default (CPU) profile compares
image sets in the penultimate layer of a classifier trained on the real digits. A Fréchet
distance there is reported as ``fd_<space>`` (e.g. ``fd_digits``), never as FID.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agm.io.atomic import save_torch
from agm.io.data import to_model_range


def images_to_input(images_uint8: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` in [0, 255] -> float32 in [-1, 1] on ``device`` (:func:`agm.io.data.to_model_range`)."""
    x = torch.as_tensor(images_uint8)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(
            f"images must be a uint8 (N, C, H, W) array, got {x.dtype} {tuple(x.shape)}"
        )
    return to_model_range(x.to(device))


class FeatureNet(nn.Module):
    """conv(3x3) -> pool -> conv(3x3) -> pool -> conv(3x3) -> avg-pool 4x4 -> linear (features)
    -> ReLU -> linear (class logits).

    ``features(x)`` is the penultimate linear layer *before* its ReLU: ``(B, feature_dim)``,
    continuous and without dead (always-zero) coordinates, which would make covariances singular.
    Input ``x: (B, in_channels, H, W)`` float in [-1, 1], H, W >= 4 (built for 16x16).
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 64
    ) -> None:
        super().__init__()
        self.kwargs: dict[str, Any] = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "feature_dim": feature_dim,
        }
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.embed = nn.Linear(2 * width * 16, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def in_channels(self) -> int:
        return int(self.kwargs["in_channels"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, C, H, W)`` in [-1, 1] -> penultimate features ``(B, feature_dim)``."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, C, H, W)`` in [-1, 1] -> class logits ``(B, num_classes)``."""
        return self.head(F.relu(self.features(x)))


@dataclass(frozen=True)
class FeatureNetResult:
    """A trained net (eval mode), its accuracies; ``heldout_accuracy`` None if no held-out set."""

    model: FeatureNet
    train_accuracy: float
    heldout_accuracy: float | None


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def accuracy(
    model: FeatureNet, images_uint8: np.ndarray, labels: np.ndarray, batch_size: int = 512
) -> float:
    """Fraction of ``images_uint8: (N, C, H, W)`` whose argmax logit equals ``labels: (N,)``."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    labels_t = torch.as_tensor(labels, device=device).long()
    correct = 0
    for start in range(0, len(images_uint8), batch_size):
        x = images_to_input(images_uint8[start : start + batch_size], device)
        correct += int((model(x).argmax(dim=1) == labels_t[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images_uint8)


def train_feature_net(
    images_uint8: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    heldout_images: np.ndarray | None = None,
    heldout_labels: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    width: int = 32,
    feature_dim: int = 64,
) -> FeatureNetResult:
    """Train a :class:`FeatureNet` with Adam on cross-entropy.

    images_uint8: (N, C, H, W) uint8; labels: (N,) integers in [0, num_classes), num_classes =
    max(label) + 1. Deterministic given ``seed`` on a given device and thread count: the weights
    are initialised under ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the
    caller's global RNG is untouched) and batches are shuffled by a ``torch.Generator`` seeded
    with ``seed``. Accuracies are measured after training, in eval mode.
    """
    labels = np.asarray(labels)
    if len(images_uint8) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need as many labels as images (> 0), got {len(labels)} and {len(images_uint8)}"
        )
    if (heldout_images is None) != (heldout_labels is None):
        raise ValueError("give both heldout_images and heldout_labels, or neither")
    device = torch.device(device)
    num_classes = int(labels.max()) + 1
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = FeatureNet(
            in_channels=images_uint8.shape[1],
            num_classes=num_classes,
            width=width,
            feature_dim=feature_dim,
        ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    x_all = images_to_input(images_uint8, device)
    y_all = torch.as_tensor(labels, device=device).long()

    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator).to(device)
        for start in range(0, len(labels), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()

    heldout = None
    if heldout_images is not None and heldout_labels is not None:
        heldout = accuracy(model, heldout_images, heldout_labels)
    return FeatureNetResult(
        model=model, train_accuracy=accuracy(model, images_uint8, labels), heldout_accuracy=heldout
    )


@torch.no_grad()
def extract_features(
    model: FeatureNet,
    images_uint8: np.ndarray,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Penultimate features of ``images_uint8: (N, C, H, W)`` uint8 -> float32 ``(N, feature_dim)``.

    Runs on ``device`` (default: the model's device; a given device moves the model there) in
    eval mode.
    """
    if images_uint8.ndim != 4 or images_uint8.shape[1] != model.in_channels:
        raise ValueError(
            f"model expects (N, {model.in_channels}, H, W) images, got shape {images_uint8.shape}"
        )
    device = _device_of(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval().to(device)
    chunks = [
        model.features(images_to_input(images_uint8[start : start + batch_size], device)).cpu()
        for start in range(0, len(images_uint8), batch_size)
    ]
    model.train(was_training)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


def save_feature_net(path: str | os.PathLike[str], model: FeatureNet) -> None:
    """Atomically write the constructor kwargs and the state dict (CPU tensors) to ``path``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"kwargs": dict(model.kwargs), "state_dict": state}, path)


def load_feature_net(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> FeatureNet:
    """Rebuild a net written by :func:`save_feature_net`, in eval mode on ``device``."""
    blob = torch.load(path, map_location=device, weights_only=True)
    model = FeatureNet(**blob["kwargs"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
