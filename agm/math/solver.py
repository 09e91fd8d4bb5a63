"""Euler–Maruyama integration of the learned bridge SDE (docs/spec.md §6, paper §4.6).

    x_{k+1} = x_k + f_EMA(x_k, t_k) Δt + g √Δt z_k,   z_k ~ N(0, I),   t_k = k / N,   Δt = 1 / N

from x_0 ~ N(0, I) at t = 0 (noise) to t = 1 (data); the result is clamped to the model's range [-1, 1]
(``agm.io.data.to_uint8`` maps it to pixels). g is the inference noise (paper: 0.01); N is the number of
function evaluations (NFE).

Seeds: every integer s has one decomposition s = seed · S + slot with 0 ≤ slot < S = 1_000_003
(Python's divmod), so the generator seeds of different (training seed, slot) pairs never coincide.
Slots 0 … S − 2 are the sample batches (:func:`batch_seed`), slot S − 1 is the Fig. 3 grid
(:func:`grid_seed`): the grid never reuses a batch's noise, for any training seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Drift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SEED_STRIDE = 1_000_003
"""S: generator seeds per training seed; slot = generator seed mod S (unchanged, so batch seeds are too)."""

GRID_SLOT = SEED_STRIDE - 1
"""The Fig. 3 grid's slot; batch indices stop below it."""


def batch_seed(seed: int, b: int) -> int:
    """Generator seed of sample batch ``b`` (0 ≤ b < :data:`GRID_SLOT`) of training seed ``seed``: seed · S + b."""
    if not 0 <= b < GRID_SLOT:
        raise ValueError(f"batch index must be in [0, {GRID_SLOT}), got {b}")
    return seed * SEED_STRIDE + b


def grid_seed(seed: int) -> int:
    """Generator seed of the Fig. 3 grid of training seed ``seed``: seed · S + (S − 1).

    The same for every model of one seed (the grids differ only by the weights), and never a
    :func:`batch_seed` of any training seed: its slot S − 1 is one no batch index reaches.
    """
    return seed * SEED_STRIDE + GRID_SLOT


@torch.no_grad()
def euler_maruyama(
    f: Drift,
    shape: tuple[int, ...],
    nfe: int,
    g: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw ``shape[0]`` images with NFE Euler–Maruyama steps of the drift ``f``.

    Args:
        f: the (EMA) drift network, f(x: (B, C, H, W), t: (B,)) → (B, C, H, W).
        shape: (B, C, H, W) of the batch to draw.
        nfe: number of Euler–Maruyama steps N ≥ 1.
        g: inference noise level (diffusion coefficient).
        generator: source of x_0 and of every z_k; a generator on ``device`` makes sampling reproducible.
        device: where to integrate.

    Returns:
        Images clamped to [-1, 1], (B, C, H, W), float32.
    """
    if nfe < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    dt = 1.0 / nfe
    x = torch.randn(shape, generator=generator, device=device)
    t = torch.empty(shape[0], device=device)
    for k in range(nfe):
        x = x + f(x, t.fill_(k * dt)).float() * dt
        if g > 0:
            x = x + g * math.sqrt(dt) * torch.randn(shape, generator=generator, device=device)
    return x.clamp(-1.0, 1.0)


def sample_batch(
    f: Drift,
    b: int,
    n: int,
    batch_size: int,
    image_shape: tuple[int, int, int],
    nfe: int,
    g: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Batch ``b`` of the ``n`` samples of training seed ``seed``: images in [-1, 1], (≤ batch_size, C, H, W).

    Drawn from its own generator seeded with :func:`batch_seed` (seed, b) = seed · S + b, so any subset of
    batches (one process's share under torchrun, or a resumed run) reproduces exactly the images a
    single process would draw.
    """
    gen = torch.Generator(device=device).manual_seed(batch_seed(seed, b))
    size = min(batch_size, n - b * batch_size)
    if size <= 0:
        raise ValueError(f"batch {b} is past the {n} samples at batch size {batch_size}")
    return euler_maruyama(f, (size, *image_shape), nfe, g, gen, device)
