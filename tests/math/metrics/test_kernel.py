"""Kernel distance (agm/math/metrics/kernel.py) against the unbiased MMD² written out by hand."""

import numpy as np
import pytest

from agm.math.metrics.kernel import kernel_distance


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j), k(a, b) = (aᵀb / D + 1)³."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1.0) ** 3

    def off_diagonal_mean(g):
        m = len(g)
        return (g.sum() - np.trace(g)) / (m * (m - 1))

    return off_diagonal_mean(k(x, x)) + off_diagonal_mean(k(y, y)) - 2.0 * k(x, y).mean()


def test_whole_sets_give_the_unbiased_mmd2():
    # subsets of all m points are permutations, and MMD²_u is invariant under them: one subset is the formula
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(0.5, 1.2, size=(40, 5))
    got = kernel_distance(x, y, seed=3, num_subsets=1, max_subset_size=40)
    # two float64 summation orders of 3 × 40² kernel values, each at most K = max|k|: the means differ by at most
    # ~ 40² · eps · K each (a worst-case bound on recursive summation), far below the value itself
    bound = 3 * 40**2 * np.finfo(np.float64).eps * np.abs((np.vstack([x, y]) @ np.vstack([x, y]).T / 5 + 1) ** 3).max()
    assert abs(got - _mmd2_unbiased(x, y)) <= bound
    assert got > 100 * bound


def test_same_distribution_is_unbiased_around_zero():
    # E[MMD²_u] = 0 when both sets come from one distribution, at any subset size (no 1/n bias)
    rng = np.random.default_rng(1)
    values = [kernel_distance(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), seed=s, num_subsets=1)
              for s in range(200)]
    mean, se = np.mean(values), np.std(values, ddof=1) / np.sqrt(len(values))
    assert abs(mean) < 4 * se
    shifted = kernel_distance(rng.normal(size=(60, 4)), rng.normal(1.0, size=(60, 4)), seed=0, num_subsets=1)
    assert shifted > 10 * np.std(values)


def test_seeded_and_leaves_the_global_generator_alone():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(30, 3))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = kernel_distance(x, y, seed=7, num_subsets=5, max_subset_size=20)
    assert np.array_equal(np.random.get_state()[1], before)
    assert kernel_distance(x, y, seed=7, num_subsets=5, max_subset_size=20) == a
    assert kernel_distance(x, y, seed=8, num_subsets=5, max_subset_size=20) != a


def test_rejects_mismatched_features():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        kernel_distance(np.zeros((5, 3)), np.zeros((5, 4)), seed=0)
    with pytest.raises(ValueError, match="N >= 2"):
        kernel_distance(np.zeros((1, 3)), np.zeros((5, 3)), seed=0)
