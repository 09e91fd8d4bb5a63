"""Tests for agm/models/samples.py: batches drawn on several threads are the batches one thread draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agm.math.solver import sample_batch
from agm.models.samples import cpu_workers, gathered_samples, sampling_drift

SHAPE = (1, 8, 8)


def _draw(f, workers: int, n: int = 70, batch_size: int = 16) -> list[tuple[int, np.ndarray]]:
    return list(gathered_samples(f, n, batch_size, SHAPE, 5, 0.01, 3, "cpu", workers=workers))


def test_threads_draw_the_same_images_in_order(make_unet):
    f = make_unet(seed=0).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference on the kernels the workers use: one thread per operation
    try:
        one = _draw(f, workers=1)
        assert torch.get_num_threads() == 1
        three = _draw(f, workers=3)
        assert torch.get_num_threads() == 1, "the workers must give back the caller's thread count"
    finally:
        torch.set_num_threads(before)
    assert [b for b, _ in three] == list(range(5))  # 70 images in batches of 16: 4 full and one of 6
    assert [x.shape[0] for _, x in three] == [16, 16, 16, 16, 6]
    for (b1, x1), (b3, x3) in zip(one, three, strict=True):
        assert b1 == b3 and x1.dtype == np.uint8
        np.testing.assert_array_equal(x1, x3)
    assert len({x.tobytes() for _, x in three}) == 5  # every batch its own noise


def test_more_workers_than_batches_and_a_bad_count(make_unet):
    f = make_unet(seed=1).eval()
    assert len(_draw(f, workers=8, n=20, batch_size=16)) == 2
    with pytest.raises(ValueError, match="workers"):
        _draw(f, workers=0)


def test_cpu_workers_uses_every_intra_op_thread_on_a_cpu_only():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cpu_workers("cpu") == 2 and cpu_workers(torch.device("cpu")) == 2
        assert cpu_workers("cuda") == 1
    finally:
        torch.set_num_threads(before)


def _trained_like(make_unet):
    f = make_unet(seed=2).eval().requires_grad_(False)
    torch.nn.init.normal_(f.conv_out.weight, std=0.05)  # zero-initialised: a nonzero drift to sample from
    return f


def test_sampling_drift_with_everything_off_is_the_network_itself(make_unet):
    """The defaults (sample.amp none, channels_last and compile off) keep the images of the plain network, byte
    for byte: the drift the solver calls is the module itself."""
    f = _trained_like(make_unet)
    assert sampling_drift(f, "cpu") is f
    with pytest.raises(ValueError, match="amp"):
        sampling_drift(f, "cpu", amp="fp16")


def test_channels_last_and_bf16_sampling_change_what_they_should(make_unet):
    """channels_last computes the same drift (float32 rounding apart); bf16 autocast returns float32 and moves the
    images by about bf16's precision (8 significant bits), far more than channels_last does."""
    f = _trained_like(make_unet)
    ref = sample_batch(f, 0, 32, 32, SHAPE, 8, 0.01, 5, "cpu")
    last = sample_batch(sampling_drift(f, "cpu", channels_last=True), 0, 32, 32, SHAPE, 8, 0.01, 5, "cpu")
    f.to(memory_format=torch.contiguous_format)
    bf16 = sample_batch(sampling_drift(f, "cpu", amp="bf16"), 0, 32, 32, SHAPE, 8, 0.01, 5, "cpu")
    assert bf16.dtype == torch.float32 and last.dtype == torch.float32
    d_last, d_bf16 = (last - ref).abs().max().item(), (bf16 - ref).abs().max().item()
    assert d_last < 1e-4, d_last
    assert 1e-4 < d_bf16 < 0.1, d_bf16
