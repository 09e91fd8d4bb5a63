"""Fréchet distance between Gaussians fitted to two feature sets.

For X_1 ~ N(mu_1, S_1) and X_2 ~ N(mu_2, S_2) (Dowson & Landau 1982; Heusel et al. 2017):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})

The function is agnostic of the feature space. Computed on Inception-v3 pool features (via
clean-fid) it is the FID; on any other space it must be reported as ``fd_<space>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``mu: (D,)`` and unbiased covariance ``sigma: (D, D)`` of a feature set, float64."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


def _as_features(feats: np.ndarray, name: str) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) feature array, got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError(
            f"{name} has {feats.shape[0]} sample(s); a covariance needs at least 2 (N >= 2)"
        )
    if not np.isfinite(feats).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return feats


def gaussian_stats(feats: np.ndarray) -> GaussianStats:
    """Mean and unbiased (1 / (N - 1)) covariance of ``feats: (N, D)``, N >= 2, in float64.

    N <= D is allowed: the covariance is then singular (rank <= N - 1), which the Fréchet
    distance handles (its matrix square root is taken on PSD matrices, see
    :func:`frechet_distance_from_stats`), but the estimate is noisy: report numbers with N >> D.
    """
    feats = _as_features(feats, "feats")
    mu = feats.mean(axis=0)
    sigma = np.cov(feats, rowvar=False)
    return GaussianStats(mu=mu, sigma=np.atleast_2d(sigma), count=feats.shape[0])


def _psd_sqrt(mat: np.ndarray) -> np.ndarray:
    """PSD square root of a symmetric matrix via ``eigh``; eigenvalues < 0 (round-off) -> 0."""
    evals, evecs = np.linalg.eigh(mat)
    return (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); mu: (D,), sigma: (D, D).

    The trace term Tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}) is computed with two symmetric
    eigendecompositions: S_1^{1/2} = V diag(sqrt(l)) V^T from ``eigh(S_1)``, then the
    eigenvalues of the symmetric PSD matrix M = S_1^{1/2} S_2 S_1^{1/2}, whose square roots sum
    to the trace. Why not ``scipy.linalg.sqrtm(S_1 S_2)`` (pytorch-fid, clean-fid): S_1 S_2 is
    not symmetric, so its Schur-based square root can return complex values or fail on the
    singular covariances that N <= D gives, which those codes patch with an eps offset and by
    dropping the imaginary part. Here every matrix is symmetric, eigenvalues are real, and
    negative round-off eigenvalues are clipped to 0, so singular covariances need no offset and
    the result is exact up to float64 round-off. The value is clipped at 0 (it can be a tiny
    negative number for identical statistics).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dim = mu1.shape[0]
    if mu1.shape != (dim,) or mu2.shape != (dim,):
        raise ValueError(f"mean vectors must both be (D,), got {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"covariances must both be ({dim}, {dim}), got {sigma1.shape} and {sigma2.shape}"
        )
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values")

    # Symmetrise against round-off before the symmetric eigensolvers.
    sigma1 = 0.5 * (sigma1 + sigma1.T)
    sigma2 = 0.5 * (sigma2 + sigma2.T)
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    middle_evals = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_covmean = np.sqrt(np.clip(middle_evals, 0.0, None)).sum()

    diff = mu1 - mu2
    dist = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(dist, 0.0))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a: (N, D)`` and ``b: (M, D)``, N, M >= 2.

    Raises ValueError if either set has fewer than 2 rows or the feature dimensions differ.
    """
    stats_a = gaussian_stats(a)
    stats_b = gaussian_stats(b)
    if stats_a.mu.shape != stats_b.mu.shape:
        raise ValueError(
            f"feature dimensions differ: a has D={stats_a.mu.shape[0]}, "
            f"b has D={stats_b.mu.shape[0]}"
        )
    return frechet_distance_from_stats(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)
