"""Improved precision/recall (agm/math/metrics/precision_recall.py): hand-computed and limiting cases."""

import numpy as np
import pytest
import torch

from agm.math.metrics import PrecisionRecall, precision_recall


def _naive(real: np.ndarray, fake: np.ndarray, k: int) -> PrecisionRecall:
    """Direct transcription of the definition with full distance matrices."""

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    r_real = np.sort(dist(real, real), axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
    cross = dist(fake, real)  # (M, N)
    precision = (cross <= r_real[None, :]).any(axis=1).mean()
    recall = (cross.T <= r_fake[None, :]).any(axis=1).mean()
    return PrecisionRecall(float(precision), float(recall))


def test_hand_computed_1d_example_with_ties_on_ball_edges():
    # k = 1. Real radii: 0->1, 1->1, 3->2, 10->1, 11->1; balls [-1,1] [0,2] [1,5] [9,11] [10,12].
    # Fakes 0.5 (in), 5 (on the edge of [1,5]: in), 5.5, -2, 7 (out): precision 2/5.
    # Fake radii: -2->2.5, 0.5->2.5, 5->0.5, 5.5->0.5, 7->1.5; balls [-4.5,0.5] [-2,3] [4.5,5.5]
    # [5,6] [5.5,8.5]. Reals 0, 1 (in), 3 (on the edge of [-2,3]: in), 10, 11 (out): recall 3/5.
    real = np.array([[0.0], [1.0], [3.0], [10.0], [11.0]])
    fake = np.array([[0.5], [5.0], [5.5], [-2.0], [7.0]])
    result = precision_recall(real, fake, k=1)
    assert result == PrecisionRecall(precision=0.4, recall=0.6)


def test_identical_sets_give_one():
    x = np.random.default_rng(0).standard_normal((300, 16))
    assert precision_recall(x, x.copy(), k=3) == PrecisionRecall(1.0, 1.0)


def test_far_apart_clouds_give_zero():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((200, 8))
    fake = rng.standard_normal((250, 8)) + 100.0
    assert precision_recall(real, fake) == PrecisionRecall(0.0, 0.0)


def test_shift_lowers_both():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((1000, 4))
    same = rng.standard_normal((1000, 4))
    shifted = rng.standard_normal((1000, 4)) + 1.5
    base = precision_recall(real, same)
    moved = precision_recall(real, shifted)
    assert base.precision > 0.6 and base.recall > 0.6
    assert moved.precision < base.precision - 0.2
    assert moved.recall < base.recall - 0.2


def test_missing_modes_keep_precision_and_lower_recall():
    rng = np.random.default_rng(3)
    centers = 20.0 * np.eye(4)  # four well-separated modes in 4-D
    real = centers[rng.integers(0, 4, 2000)] + rng.standard_normal((2000, 4))
    fake = centers[rng.integers(0, 2, 2000)] + rng.standard_normal((2000, 4))  # only modes 0 and 1
    result = precision_recall(real, fake)
    assert result.precision > 0.9
    assert 0.35 < result.recall < 0.55


def test_matches_naive_definition():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((150, 5))
    fake = rng.standard_normal((120, 5)) * 1.3 + 0.2
    for k in (1, 3, 5):
        assert precision_recall(real, fake, k=k) == _naive(real, fake, k)


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "batch_sizes"),
    [
        (60, 50, 4, (1, 3, 7)),
        (600, 550, 32, (50, 128, 333)),
    ],
)
def test_batched_equals_unbatched_exactly(n_real, n_fake, dim, batch_sizes):
    rng = np.random.default_rng(5)
    real = rng.standard_normal((n_real, dim)).astype(np.float32)
    fake = (rng.standard_normal((n_fake, dim)) * 1.1 + 0.05).astype(np.float32)
    real[10:14] = real[9]  # duplicates: exact ties among the nearest neighbours
    full = precision_recall(real, fake, batch_size=10_000)
    assert 0.0 < full.precision < 1.0 and 0.0 < full.recall < 1.0
    for batch_size in batch_sizes:
        assert precision_recall(real, fake, batch_size=batch_size) == full


def test_torch_and_numpy_inputs_agree():
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((100, 6)), rng.standard_normal((90, 6)) + 0.5
    expected = precision_recall(real, fake)
    assert precision_recall(torch.from_numpy(real), torch.from_numpy(fake)) == expected
    assert precision_recall(torch.from_numpy(real), fake) == expected


def test_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="neighbour"):
        precision_recall(x, np.ones((10, 2)), k=3)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(np.zeros((10, 2)), np.zeros((10, 2)), k=0)
    with pytest.raises(ValueError, match="2-D"):
        precision_recall(np.zeros(10), np.zeros((10, 2)))
