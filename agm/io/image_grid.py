"""Image grids: uint8 images (N, C, H, W) tiled row-major into one array or PNG (Fig. 3, sample grids).

Used by the sample stage and by the report, so it lives outside the report package.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from agm.io.atomic import atomic_path

PathLike = str | os.PathLike[str]


def check_uint8_nchw(images: np.ndarray, name: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be (N, C, H, W) with C in (1, 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return images


def image_grid(
    images: np.ndarray,
    nrow: int,
    upscale: int = 1,
    padding: int = 2,
    pad_value: int = 255,
) -> np.ndarray:
    """Tile images into one (H', W', C) uint8 array with torchvision's ``make_grid``.

    Args:
        images: (N, C, H, W) uint8, C = 1 or 3.
        nrow: images per grid row; the grid has min(nrow, N) columns and ceil(N / nrow) rows.
        upscale: integer nearest-neighbour magnification applied to each image before tiling.
        padding: pixels of ``pad_value`` between images and around the border (not upscaled).
        pad_value: grey level of the padding.

    Returns:
        (rows * (H * upscale + padding) + padding, cols * (W * upscale + padding) + padding, C)
        uint8; empty cells of the last row are left at ``pad_value``.
    """
    images = check_uint8_nchw(images)
    if nrow < 1 or upscale < 1 or padding < 0:
        raise ValueError(
            f"need nrow >= 1, upscale >= 1, padding >= 0; got {nrow}, {upscale}, {padding}"
        )
    x = torch.from_numpy(images)
    if upscale > 1:
        x = x.repeat_interleave(upscale, dim=2).repeat_interleave(upscale, dim=3)
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value)  # C = 1 comes back as 3 equal channels
    return grid[: images.shape[1]].permute(1, 2, 0).contiguous().numpy()


def _save_array_png(array: np.ndarray, path: PathLike) -> None:
    """Write an (H, W, 1) or (H, W, 3) uint8 array as PNG ("L" or "RGB")."""
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def save_image_grid(images: np.ndarray, path: PathLike, nrow: int, upscale: int = 1) -> None:
    """Save images as one PNG grid (see :func:`image_grid` for the exact size).

    Args:
        images: (N, C, H, W) uint8, C = 1 (written as "L") or 3 (written as "RGB").
        path: output PNG.
        nrow: images per grid row.
        upscale: integer nearest-neighbour magnification, so that e.g. 16x16 digits are visible.
    """
    _save_array_png(image_grid(images, nrow=nrow, upscale=upscale), path)
