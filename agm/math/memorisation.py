"""Memorisation of the training set by generated samples, from nearest-neighbour distances.

For each generated sample g of G (M, D), with the training set T (N, D), a held-out set H (K, D) of the same
distribution never trained on, and T_K a random subset of K points of T (drawn without replacement):

    d1(g)   = min_{t in T} ||g - t||               (nearest training point)
    d2(g)   = second smallest ||g - t||, t in T     (second-nearest training point)
    dh(g)   = min_{h in H} ||g - h||               (nearest held-out point)
    dt_K(g) = min_{t in T_K} ||g - t||             (nearest point of an equal-size training subset)

    copy_share              = (1/M) Σ_g 1[ d1(g) < d2(g) / 3 ]
    train_heldout_ratio     = median_g dt_K(g) / median_g dh(g)
    closer_to_train_share   = (1/M) Σ_g 1[ dt_K(g) < dh(g) ]

The copy criterion is the "closer than a third of the second-nearest" rule of Carlini et al. 2023 ("Extracting
Training Data from Diffusion Models") and Somepalli et al. 2023 ("Diffusion Art or Digital Forgery?"), adapted to
Euclidean nearest neighbours: a sample counts as a copy when one training point is much closer than any other.
For points spread like a homogeneous Poisson process in D dimensions (d1/d2)^D is uniform on [0, 1], so a model
that draws fresh points has copy_share ≈ 3^-D (0.11 at D = 2, 2e-4 at D = 8); the inequality is strict, so a
sample on top of a training image that appears twice in T (d1 = d2 = 0) is not counted.

Nearest-neighbour distances shrink as the reference set grows, so the train-vs-held-out comparison uses T_K, of
the held-out set's size: for a model that does not memorise, a sample is as close to K training points as to K
unseen ones, so train_heldout_ratio ≈ 1 and closer_to_train_share ≈ 1/2; samples that sit on images of T_K
give a ratio well below 1 and a share near 1 (copies of other training images count less: see below).
:func:`real_reference` scores the held-out images themselves (real digits that were never trained on): the values
a model drawing fresh images would reach.

T_K holds only K of the N training points, so these two statistics see a copy only when the copied image is in
T_K. A model that outputs each training image once, exactly, scores closer_to_train_share = K/N + (1 - K/N) / 2
in expectation (a copy of a point outside T_K is, to T_K and to H, just another fresh point), and a ratio of
about the (1/2 - K/N) / (1 - K/N) quantile of dh over its median: 0.625 and about 0.9 at K/N = 1/4 for
8-dimensional Gaussians. copy_share (on all of T) sees every copy. An equal-size comparison that also sees every
copy is nn_train_median against the nn_train_median of :func:`real_reference` (nearest training point of the
samples, and of the held-out images, both among all N training points).

Distances are float64. A matrix product of the ||a||² - 2 a·b + ||b||² form picks, for each query, a few
candidate neighbours, with a rigorous float64 error bound deciding when the candidates surely contain the true
nearest ones (else the query's whole row is computed directly); the returned distances are the candidates' direct
sums of squared differences, whose rounding depends on the pair alone. Results are therefore identical for every
``batch_size``, and exact copies are at distance exactly 0. Memory is O(batch_size * N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from agm.math.metrics.precision_recall import _canonical_sqdist, _Reference


@dataclass(frozen=True)
class Memorisation:
    """Nearest-neighbour memorisation statistics of M samples against N training and K held-out points.

    ``copy_share``: fraction of samples with d1 < d2 / 3. ``nn_train_median``, ``nn_heldout_median``,
    ``nn_train_equal_n_median``: medians of d1, dh and dt_K. ``train_heldout_ratio``: median dt_K / median dh
    (``inf`` when only the denominator is 0, ``nan`` when both are). ``closer_to_train_share``: fraction of samples
    with dt_K < dh (ties count as not closer).
    """

    copy_share: float
    nn_train_median: float
    nn_heldout_median: float
    nn_train_equal_n_median: float
    train_heldout_ratio: float
    closer_to_train_share: float
    n_samples: int
    n_train: int
    n_heldout: int

    def record(self, prefix: str) -> dict[str, float]:
        """The headline statistics as ``{prefix + name: value}``, e.g. prefix ``"px_"`` or ``"feat_"``."""
        return {
            f"{prefix}copy_share": self.copy_share,
            f"{prefix}train_heldout_ratio": self.train_heldout_ratio,
            f"{prefix}closer_to_train_share": self.closer_to_train_share,
            f"{prefix}nn_train_median": self.nn_train_median,
            f"{prefix}nn_heldout_median": self.nn_heldout_median,
        }


def _as_points(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as a float64 (n, D) array: 2-D as is, higher ranks flattened from dim 1 (images to pixel rows)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have a point axis and a feature axis, got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _check_same_dim(named: dict[str, np.ndarray]) -> None:
    dims = {name: arr.shape[1] for name, arr in named.items()}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{name} has D={dim}" for name, dim in dims.items())
        raise ValueError(f"feature dimensions differ: {listed}")


def _nearest_sqdists(
    queries: np.ndarray, points: np.ndarray, k: int, batch_size: int, exclude_self: bool = False
) -> np.ndarray:
    """Squared distances of each query to its k nearest points, ascending, ``(M, k)`` float64.

    With ``exclude_self`` the queries are the points themselves and each query's own index is skipped (its
    distance set to +inf), so a duplicate elsewhere in the set still counts at distance 0.

    Screen and exact pass (as in :func:`agm.math.metrics.precision_recall._kth_sqradii`). The screen runs on
    data centred on the points' mean (small norms, small error bounds); the returned squared distances are direct
    sums over the inputs as given, so they carry no rounding of the centring. A row's bound T covers the screen's
    error against the centred direct sums, and also (with room to spare: it is ~6 u (||a - c||² + ||b - c||²)
    against T's >= 100 u (...)) the centring's own rounding, so a screened value is within 2T of the returned one.
    With v_k the k-th smallest screened value of a row, the true k-th smallest squared distance is <= v_k + 2T, and
    each of the k nearest points has a screened value <= v_k + 4T. When the widest candidate taken lies above that,
    the candidates hold the k nearest; otherwise the row is computed directly in full.
    """
    center = points.mean(axis=0, keepdims=True)
    q_all, p_all = torch.from_numpy(queries), torch.from_numpy(points)
    q_centred = torch.from_numpy(queries - center)
    available = p_all.shape[0] - (1 if exclude_self else 0)
    width = min(2 * k + 2, available)
    ref = _Reference(torch.from_numpy(points - center))
    exact_ref = _Reference(p_all)
    out = []
    for start in range(0, q_all.shape[0], batch_size):
        q = q_all[start : start + batch_size]
        rows_in_batch = torch.arange(q.shape[0])
        approx, bound = ref.screen(q_centred[start : start + batch_size])
        if exclude_self:
            approx[rows_in_batch, start + rows_in_batch] = torch.inf
        values, index = approx.topk(width, dim=1, largest=False)
        covered = (values[:, -1] > values[:, k - 1] + 4.0 * bound) | (width == available)
        exact = _canonical_sqdist(q[:, None, :], p_all[index])
        best = exact.topk(k, dim=1, largest=False).values
        rows = (~covered).nonzero(as_tuple=True)[0]
        if rows.numel():
            full = exact_ref.canonical_rows(q[rows])
            if exclude_self:
                full[torch.arange(rows.numel()), start + rows] = torch.inf
            best[rows] = full.topk(k, dim=1, largest=False).values
        out.append(best)
    return torch.cat(out).numpy()


def nearest_two(queries: np.ndarray, points: np.ndarray, batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Distances of each query to its nearest and second-nearest point.

    Args:
        queries: (M, D) array; arrays of higher rank are flattened from dim 1.
        points: (N, D) array with N >= 2, same D (after flattening).
        batch_size: queries per distance block; memory is O(batch_size * N), the result does not depend on it.

    Returns:
        ``(d1, d2)``, each (M,) float64, d1 <= d2.
    """
    _check_batch_size(batch_size)
    q, p = _as_points(queries, "queries"), _as_points(points, "points")
    _check_same_dim({"queries": q, "points": p})
    if len(p) < 2:
        raise ValueError(f"points needs at least 2 points for a second-nearest, got {len(p)}")
    sq = _nearest_sqdists(q, p, 2, batch_size)
    return np.sqrt(sq[:, 0]), np.sqrt(sq[:, 1])


def nearest(queries: np.ndarray, points: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Distance of each query to its nearest point.

    Args:
        queries: (M, D) array; arrays of higher rank are flattened from dim 1.
        points: (N, D) array with N >= 1, same D (after flattening).
        batch_size: queries per distance block; memory is O(batch_size * N), the result does not depend on it.

    Returns:
        (M,) float64 distances.
    """
    _check_batch_size(batch_size)
    q, p = _as_points(queries, "queries"), _as_points(points, "points")
    _check_same_dim({"queries": q, "points": p})
    if len(p) < 1:
        raise ValueError("points is empty")
    return np.sqrt(_nearest_sqdists(q, p, 1, batch_size)[:, 0])


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        return float("nan") if numerator == 0.0 else float("inf")
    return numerator / denominator


def _summarise(
    d1: np.ndarray, d2: np.ndarray, dh: np.ndarray, dt: np.ndarray, n_train: int, n_heldout: int
) -> Memorisation:
    train_equal_n, heldout = float(np.median(dt)), float(np.median(dh))
    return Memorisation(
        copy_share=float(np.mean(d1 < d2 / 3.0)),
        nn_train_median=float(np.median(d1)),
        nn_heldout_median=heldout,
        nn_train_equal_n_median=train_equal_n,
        train_heldout_ratio=_ratio(train_equal_n, heldout),
        closer_to_train_share=float(np.mean(dt < dh)),
        n_samples=len(d1),
        n_train=n_train,
        n_heldout=n_heldout,
    )


def _check_train_heldout(train: np.ndarray, heldout: np.ndarray) -> None:
    if len(heldout) < 1:
        raise ValueError("heldout is empty")
    if len(train) < 2:
        raise ValueError(f"train needs at least 2 points for a second-nearest, got {len(train)}")
    if len(train) < len(heldout):
        raise ValueError(
            f"train has {len(train)} points, fewer than heldout's {len(heldout)}: no equal-size training subset"
        )


def memorisation(
    samples: np.ndarray, train: np.ndarray, heldout: np.ndarray, *, seed: int, batch_size: int = 2048
) -> Memorisation:
    """Memorisation statistics of generated ``samples`` against ``train`` and ``heldout`` (module docstring).

    Args:
        samples: (M, D) generated points, M >= 1 (pixels, features: any space). Arrays of higher rank, e.g.
            (M, C, H, W) images, are flattened from dim 1; so are ``train`` and ``heldout``.
        train: (N, D) training points, N >= 2 and N >= K.
        heldout: (K, D) points of the same distribution never trained on, K >= 1.
        seed: seeds the ``numpy.random.Generator`` that draws the K-point training subset T_K (without
            replacement), so the result is a function of the inputs and ``seed``.
        batch_size: samples per distance block; memory is O(batch_size * N), the result does not depend on it.
    """
    _check_batch_size(batch_size)
    g, t, h = _as_points(samples, "samples"), _as_points(train, "train"), _as_points(heldout, "heldout")
    _check_same_dim({"samples": g, "train": t, "heldout": h})
    if len(g) < 1:
        raise ValueError("samples is empty")
    _check_train_heldout(t, h)
    subset = np.random.default_rng(seed).choice(len(t), size=len(h), replace=False)
    sq_train = _nearest_sqdists(g, t, 2, batch_size)
    dh = np.sqrt(_nearest_sqdists(g, h, 1, batch_size)[:, 0])
    dt = np.sqrt(_nearest_sqdists(g, t[subset], 1, batch_size)[:, 0])
    return _summarise(np.sqrt(sq_train[:, 0]), np.sqrt(sq_train[:, 1]), dh, dt, len(t), len(h))


def real_reference(train: np.ndarray, heldout: np.ndarray, *, seed: int, batch_size: int = 2048) -> Memorisation:
    """The statistics of :func:`memorisation` with the held-out points themselves as the samples.

    They are real images the model never saw, so this is what a model that draws fresh images would score: the
    reference its ``copy_share``, ``train_heldout_ratio`` and ``closer_to_train_share`` are read against.

    A held-out point's own distance to itself is 0, so dh is the distance to the nearest *other* held-out point:
    the H-to-H distances are computed with the diagonal set to +inf (a duplicate pair in H still gives dh = 0 for
    both). Each point is thus compared with K - 1 held-out points, and the equal-size training subset T_{K-1} has
    K - 1 points to match (one subset for all points), so train_heldout_ratio and closer_to_train_share compare
    sets of equal size. d1 and d2 use all of ``train``. The result's ``n_samples`` and ``n_heldout`` are both K.

    Args:
        train: (N, D) training points, N >= 2 and N >= K; arrays of higher rank are flattened from dim 1.
        heldout: (K, D) held-out points, K >= 2 (each needs another held-out point).
        seed: seeds the ``numpy.random.Generator`` that draws T_{K-1} (without replacement).
        batch_size: points per distance block; the result does not depend on it.
    """
    _check_batch_size(batch_size)
    t, h = _as_points(train, "train"), _as_points(heldout, "heldout")
    _check_same_dim({"train": t, "heldout": h})
    _check_train_heldout(t, h)
    if len(h) < 2:
        raise ValueError(f"heldout needs at least 2 points for a nearest other held-out point, got {len(h)}")
    subset = np.random.default_rng(seed).choice(len(t), size=len(h) - 1, replace=False)
    sq_train = _nearest_sqdists(h, t, 2, batch_size)
    dh = np.sqrt(_nearest_sqdists(h, h, 1, batch_size, exclude_self=True)[:, 0])
    dt = np.sqrt(_nearest_sqdists(h, t[subset], 1, batch_size)[:, 0])
    return _summarise(np.sqrt(sq_train[:, 0]), np.sqrt(sq_train[:, 1]), dh, dt, len(t), len(h))
