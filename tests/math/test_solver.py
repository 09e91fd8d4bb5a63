"""Tests for agm/math/solver.py: Euler–Maruyama vs closed forms, seeding, batch sharding (docs/spec.md §6)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import reordered_tol

from agm.io.data import to_uint8
from agm.math.ema import EMA
from agm.math.solver import GRID_SLOT, SEED_STRIDE, batch_seed, euler_maruyama, grid_seed, sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (4, 1, 3, 3)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clamped(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-1, 1)


def _euler_tol(x0: torch.Tensor, increments: float, nfe: int) -> float:
    """helpers.reordered_tol for N Euler–Maruyama steps against their closed form: each step rounds a
    product and a sum (and, with noise, another product and sum), every value within |x0| + Σ|increments|;
    clamping to [-1, 1] only shrinks a difference."""
    return reordered_tol(x0.dtype, terms=4 * nfe + 1, scale=float(x0.abs().max()) + increments)


def _zero(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def _pull_to_half(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 - x


def test_constant_drift_without_noise_gives_x0_plus_c():
    x0 = torch.randn(SHAPE, generator=_gen(3))
    for c in (0.25, -0.3):
        drift = lambda x, t, c=c: torch.full_like(x, c)
        out = euler_maruyama(drift, SHAPE, nfe=8, g=0.0, generator=_gen(3))
        torch.testing.assert_close(out, _clamped(x0 + c), rtol=0, atol=_euler_tol(x0, abs(c), 8))


def test_time_grid_is_left_endpoints_k_over_n():
    """f(x, t) = t: Euler sums Σ_k (k/N)(1/N) = (N − 1) / (2N), not the integral 1/2."""
    nfe = 5
    seen: list[float] = []

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.shape == (SHAPE[0],) and (t == t[0]).all()
        seen.append(float(t[0]))
        return t[:, None, None, None].expand_as(x)

    out = euler_maruyama(f, SHAPE, nfe=nfe, g=0.0, generator=_gen(0))
    assert seen == pytest.approx([k / nfe for k in range(nfe)])
    x0 = torch.randn(SHAPE, generator=_gen(0))
    torch.testing.assert_close(out, _clamped(x0 + (nfe - 1) / (2 * nfe)), rtol=0, atol=_euler_tol(x0, 0.5, nfe))


def test_noise_term_is_g_sqrt_dt_z():
    """f = 0: x_N = x_0 + g √Δt Σ_k z_k; x_0, then z_0..z_{N-1}, drawn from the generator."""
    nfe, g = 4, 0.3
    out = euler_maruyama(_zero, SHAPE, nfe=nfe, g=g, generator=_gen(5))
    gen = _gen(5)
    x = x0 = torch.randn(SHAPE, generator=gen)
    increments = 0.0
    for _ in range(nfe):
        step = g * math.sqrt(1 / nfe) * torch.randn(SHAPE, generator=gen)
        x, increments = x + step, increments + float(step.abs().max())
    torch.testing.assert_close(out, _clamped(x), rtol=0, atol=_euler_tol(x0, increments, nfe))


def test_same_seed_same_samples_different_seed_different():
    a = euler_maruyama(_pull_to_half, SHAPE, nfe=10, g=0.5, generator=_gen(1))
    b = euler_maruyama(_pull_to_half, SHAPE, nfe=10, g=0.5, generator=_gen(1))
    c = euler_maruyama(_pull_to_half, SHAPE, nfe=10, g=0.5, generator=_gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_output_in_model_range_and_float32():
    drift = lambda x, t: 10 * torch.sign(x)
    out = euler_maruyama(drift, (64, 1, 4, 4), nfe=3, g=0.1, generator=_gen(0))
    assert out.dtype == torch.float32 and out.shape == (64, 1, 4, 4)
    assert out.min() == -1.0 and out.max() == 1.0  # clamped at both ends
    assert ((out >= -1) & (out <= 1)).all()


def test_pixels_are_those_of_the_former_unit_interval_output(make_unet):
    """samples.npy stays byte-identical: to_uint8 of the [-1, 1] output equals the former path
    to_uint8(((x + 1) / 2) * 2 - 1), which the stages ran on a [0, 1] output, for every float32 in
    [-1, 1] near the pixel boundaries and on the samples of a random U-Net and a digit-like drift."""
    values = torch.linspace(-1, 1, 511)  # pixel centres and the rounding boundaries between them
    up, down = torch.nextafter(values, torch.tensor(2.0)), torch.nextafter(values, torch.tensor(-2.0))
    near = torch.cat([values, up, down])
    grid = torch.rand(1 << 20, generator=_gen(0)) * 2 - 1
    for x in (near.clamp(-1, 1), grid):
        assert torch.equal(to_uint8(x), to_uint8(((x + 1.0) / 2.0) * 2 - 1))

    def digits_drift(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # ends at fixed pixel levels + noise
        target = torch.linspace(-1, 1, 256)[torch.arange(x[0].numel()) % 256].view_as(x[0])
        return (target - x) / (1.0 - t)[:, None, None, None]

    unet = make_unet().eval()
    unet.conv_out.reset_parameters()  # the zero-initialised output would make f = 0
    for f in (unet, digits_drift):
        x = euler_maruyama(f, (64, 1, 8, 8), nfe=10, g=0.01, generator=_gen(1))
        assert torch.equal(to_uint8(x), to_uint8(((x + 1.0) / 2.0) * 2 - 1))


@pytest.mark.parametrize("nfe", [0, -1])
def test_nfe_below_one_is_an_error(nfe):
    with pytest.raises(ValueError, match="nfe"):
        euler_maruyama(_zero, SHAPE, nfe=nfe, g=0.0, generator=_gen(0))


def test_samples_an_ema_unet(make_unet):
    f = EMA(make_unet(), decay=0.9)
    out = euler_maruyama(f, (2, 1, 8, 8), nfe=3, g=0.01, generator=_gen(0))
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()


def _batches(indices=None, seed: int = 7) -> dict[int, torch.Tensor]:
    """The batches ``indices`` (default: all three) of n = 10 samples at batch size 4, each drawn alone."""
    return {b: sample_batch(_pull_to_half, b, n=10, batch_size=4, image_shape=(1, 3, 3), nfe=4, g=0.5, seed=seed)
            for b in (indices if indices is not None else range(3))}


def test_sample_batch_covers_n_samples():
    full = _batches()
    assert sorted(full) == [0, 1, 2]
    assert [len(full[b]) for b in range(3)] == [4, 4, 2]
    assert not torch.allclose(full[0], full[1])  # every batch has its own generator


def test_sample_batch_subset_reproduces_the_full_run():
    """The sharding property: any subset of batch indices draws exactly the full run's batches."""
    full = _batches()
    for indices in (range(1, 3), range(2, 3), [2, 0]):
        part = _batches(indices)
        assert sorted(part) == sorted(indices)
        for b, images in part.items():
            assert torch.equal(images, full[b]), b
    assert not torch.equal(_batches(seed=8)[0], full[0])


def test_sample_batch_seed_batch_b_with_seed_times_stride_plus_b():
    """Batch seeds are unchanged by the grid's own slot: samples.npy stays byte-identical."""
    full = _batches()
    for b in range(3):
        assert batch_seed(7, b) == 7 * 1_000_003 + b
        expected = euler_maruyama(_pull_to_half, (len(full[b]), 1, 3, 3), nfe=4, g=0.5,
                                  generator=_gen(7 * 1_000_003 + b))
        assert torch.equal(full[b], expected), b


def test_grid_seed_is_no_batch_seed_and_deterministic():
    """Fig. 3 must not reuse sample noise: once s + 1 was batch 1's seed for training seed 0."""
    batch_seeds = {batch_seed(seed, b) for seed in range(10) for b in range(1000)}
    grid_seeds = [grid_seed(seed) for seed in range(10)]
    assert batch_seeds.isdisjoint(grid_seeds)
    assert len(set(grid_seeds)) == 10
    assert grid_seeds == [grid_seed(seed) for seed in range(10)]
    # The construction: divmod by S recovers (training seed, slot); batches never reach the grid's slot.
    for seed in (-3, 0, 1, 9, 12345):
        assert divmod(grid_seed(seed), SEED_STRIDE) == (seed, GRID_SLOT)
        assert divmod(batch_seed(seed, GRID_SLOT - 1), SEED_STRIDE) == (seed, GRID_SLOT - 1)


def test_batch_index_may_not_reach_the_grid_slot():
    with pytest.raises(ValueError, match="batch index"):
        batch_seed(0, GRID_SLOT)
    with pytest.raises(ValueError, match="batch index"):
        _batches(indices=[GRID_SLOT])
