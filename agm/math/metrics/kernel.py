"""Kernel distance (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimate of the squared maximum
mean discrepancy between two feature sets X (real) and Y (samples) under the cubic polynomial kernel

    k(x, y) = (xᵀy / D + 1)³,    MMD²_u = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j)

averaged over random subsets of m = min(|X|, |Y|, max_subset_size) points of each set. Unlike the Fréchet distance
it has no bias in the number of samples (its expectation does not depend on m), so values at different n, and
a real-vs-real reference at another n, compare like with like. Computed with clean-fid's own
``cleanfid.fid.kernel_distance``; on Inception-v3 pool features it is the KID, in any other space ``kd_<space>``.
"""

from __future__ import annotations

import numpy as np

KERNEL_NAMES = {"digits": "kd_digits", "inception": "kid"}
"""The kernel distance's name in each feature space (``kid`` only for clean-fid's Inception-v3 features)."""
KERNEL_SEED = 0
"""Seed of the subsets the evaluate and features stages draw (100 subsets of up to 1,000 points, clean-fid's
defaults): one fixed draw, so a metrics file is a function of its features alone."""


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, seed: int, num_subsets: int = 100,
                    max_subset_size: int = 1000) -> float:
    """MMD²_u of ``fake`` (M, D) against ``real`` (N, D), averaged over ``num_subsets`` random subsets.

    clean-fid draws the subsets from NumPy's global generator; it is seeded with ``seed`` for this call and
    restored afterwards, so the value is a function of the inputs and ``seed`` alone.
    """
    from cleanfid.fid import kernel_distance as cleanfid_kernel_distance

    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    for name, feats in (("real", real), ("fake", fake)):
        if feats.ndim != 2 or len(feats) < 2:
            raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {feats.shape}")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return float(cleanfid_kernel_distance(real, fake, num_subsets=num_subsets, max_subset_size=max_subset_size))
    finally:
        np.random.set_state(state)
