"""Shared fixtures for the core-library tests: one torch thread and tiny networks and data."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from agm.math.nets import DriftUNet, Potential

# A U-Net small enough for hundreds of CPU steps in seconds: 1 channel, 8x8, 2 scales (8, 4).
TINY_UNET = dict(
    in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
    attn_resolutions=(), time_embed_dim=16, head_channels=8, dropout=0.0, groups=4,
)
TINY_POTENTIAL = dict(in_channels=1, widths=(8, 8, 8), pool=1, groups=4)


@pytest.fixture(scope="module")
def one_thread():
    """Run a test module on one intra-op thread (determinism, and a shared 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test: networks, noise and batches are built in it. For
    comparisons of two summation orders whose bound (tests/helpers.py) float32 cannot keep meaningful."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def tiny_unet_kwargs() -> dict:
    """Constructor arguments of the tiny DriftUNet."""
    return dict(TINY_UNET)


@pytest.fixture
def tiny_potential_kwargs() -> dict:
    """Constructor arguments of the tiny Potential."""
    return dict(TINY_POTENTIAL)


@pytest.fixture
def make_unet() -> Callable[..., DriftUNet]:
    """make_unet(seed=0, **overrides) → a tiny DriftUNet initialised from ``seed``."""

    def make(seed: int = 0, **overrides) -> DriftUNet:
        torch.manual_seed(seed)
        return DriftUNet(**{**TINY_UNET, **overrides})

    return make


@pytest.fixture
def make_potential() -> Callable[..., Potential]:
    """make_potential(seed=1, **overrides) → a tiny Potential initialised from ``seed``."""

    def make(seed: int = 1, **overrides) -> Potential:
        torch.manual_seed(seed)
        return Potential(**{**TINY_POTENTIAL, **overrides})

    return make


def toy_images(n: int = 64, side: int = 8) -> torch.Tensor:
    """``n`` fixed uint8 images (n, 1, side, side): two bars, a square and a checkerboard."""
    i = torch.arange(side)
    rows, cols = i[:, None].expand(side, side), i[None, :].expand(side, side)
    patterns = torch.stack([
        (rows >= side // 2),
        (cols >= side // 2),
        ((rows - side // 2).abs() < side // 4) & ((cols - side // 2).abs() < side // 4),
        ((rows + cols) % 2 == 0),
    ]).to(torch.uint8) * 255
    return patterns[torch.arange(n) % 4][:, None].contiguous()


@pytest.fixture
def toy_data() -> torch.Tensor:
    """64 fixed 8x8 single-channel uint8 images of four simple patterns."""
    return toy_images()
