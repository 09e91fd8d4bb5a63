"""Tests for agm/models/samples.py: batches drawn on several threads are the batches one thread draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agm.models.samples import cpu_workers, gathered_samples

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
