"""Tests for agm/io/image_grid.py (a wrapper of torchvision's make_grid): grid sizes, modes and content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

from agm.io.image_grid import image_grid, save_image_grid


def _uint8_images(n: int, c: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize(("c", "mode"), [(1, "L"), (3, "RGB")])
def test_save_image_grid_size_mode_and_content(tmp_path: Path, c: int, mode: str) -> None:
    images = _uint8_images(10, c, 16, 16)
    path = tmp_path / "grid.png"
    save_image_grid(images, path, nrow=4, upscale=3)
    image = Image.open(path)
    assert image.mode == mode
    # 10 images, 4 per row -> 4 columns, 3 rows; each cell 16*3 pixels plus 2 of padding.
    assert image.size == (4 * (48 + 2) + 2, 3 * (48 + 2) + 2)
    pixels = np.asarray(image).reshape(image.size[1], image.size[0], c)
    first = images[0].repeat(3, axis=1).repeat(3, axis=2).transpose(1, 2, 0)
    np.testing.assert_array_equal(pixels[2:50, 2:50], first)
    # image 5 sits in row 1, column 1
    fifth = images[5].repeat(3, axis=1).repeat(3, axis=2).transpose(1, 2, 0)
    np.testing.assert_array_equal(pixels[52:100, 52:100], fifth)


@pytest.mark.parametrize("n", [2, 7, 8, 9])
def test_image_grid_matches_torchvision_make_grid(n: int) -> None:
    images = _uint8_images(n, 3, 5, 6)
    ours = image_grid(images, nrow=4, padding=2, pad_value=255)
    theirs = make_grid(torch.from_numpy(images), nrow=4, padding=2, pad_value=255)
    np.testing.assert_array_equal(ours, theirs.permute(1, 2, 0).numpy())


def test_image_grid_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        image_grid(np.zeros((2, 1, 4, 4), dtype=np.float32), nrow=2)
    with pytest.raises(ValueError, match="C in"):
        image_grid(np.zeros((2, 2, 4, 4), dtype=np.uint8), nrow=2)
