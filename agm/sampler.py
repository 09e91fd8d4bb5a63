"""Euler–Maruyama integration of the learned bridge SDE (spec §6, paper §4.6).

    x_{k+1} = x_k + f_EMA(x_k, t_k) Δt + g √Δt z_k,   z_k ~ N(0, I),   t_k = k / N,   Δt = 1 / N

from x_0 ~ N(0, I) at t = 0 (noise) to t = 1 (data); the result is clamped to [-1, 1] and mapped
to [0, 1]. g is the inference noise (paper: 0.01); N is the number of function evaluations (NFE).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Drift = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
        Images in [0, 1], (B, C, H, W), float32.
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
    return (x.clamp(-1.0, 1.0) + 1.0) / 2.0


def sample_batches(
    f: Drift,
    n: int,
    batch_size: int,
    image_shape: tuple[int, int, int],
    nfe: int,
    g: float,
    seed: int,
    device: torch.device | str = "cpu",
    indices: range | None = None,
):
    """Yield (batch_index, images in [0, 1]) for the batches covering ``n`` samples.

    Batch b is drawn from its own generator seeded with (seed, b), so any subset of batches (one rank's
    share under torchrun, or a resumed run) reproduces exactly the images a single process would draw.
    """
    n_batches = math.ceil(n / batch_size)
    for b in indices if indices is not None else range(n_batches):
        size = min(batch_size, n - b * batch_size)
        gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
        yield b, euler_maruyama(f, (size, *image_shape), nfe, g, gen, device)
