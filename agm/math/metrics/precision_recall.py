"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric
for Assessing Generative Models").

Each point of a set S gets a ball whose radius is the distance to its k-th nearest neighbour in S
(itself excluded). With Φ_r the real features and Φ_g the generated ones:

    precision = (1/|Φ_g|) Σ_{φ in Φ_g} 1[ ∃ φ' in Φ_r : ||φ - φ'|| <= r_k(φ', Φ_r) ]
    recall    = (1/|Φ_r|) Σ_{φ in Φ_r} 1[ ∃ φ' in Φ_g : ||φ - φ'|| <= r_k(φ', Φ_g) ]

Exactness across batch sizes. A matrix product computes all pairwise distances fast, but its
rounding depends on the shapes of the call (the BLAS kernel and its reduction order change with the
number of rows), so a point's distances, and hence a yes/no at a ball's edge, could change with the
batch size. Here every decision is made on a *canonical* squared distance, computed pair by pair
with an order fixed by D alone (:func:`_canonical_sqdist`). The matrix-product form
||a||² - 2 a·b + ||b||² (float64) only screens: a pair whose approximate value is farther from the
threshold than a rigorous float64 error bound is decided by it (the canonical value is on the same
side), and the few pairs within the bound are recomputed canonically. Results are therefore
identical for every ``batch_size`` and on every device, and the cost stays that of a matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision (fidelity of fakes) and recall (coverage of reals), both in [0, 1]."""

    precision: float
    recall: float


def _canonical_sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(..., D), (..., D) -> (...)`` (broadcast), float64.

    The squared differences are summed by a pairwise tree whose shape depends on D only, with
    elementwise additions, so a pair's value never depends on which other pairs share the call.
    """
    terms = (x - y).square()
    while terms.shape[-1] > 1:
        half = terms.shape[-1] // 2
        summed = terms[..., :half] + terms[..., half : 2 * half]
        terms = (
            torch.cat([summed, terms[..., 2 * half :]], dim=-1) if terms.shape[-1] % 2 else summed
        )
    return terms[..., 0]


class _Reference:
    """A reference set ``points: (M, D)``, augmented so that one matrix product screens distances.

    With a query row a_aug = [a, ||a||², 1] and a reference row b_aug = [-2b, 1, ||b||² - s] the
    product is ||a - b||² - s (s = 0, or a squared radius). In float64 its error against the
    canonical value is at most ``scale * (||a||² + ||b||² + s)``: gamma_{D+2} for the product
    (whose absolute terms sum to <= 2 (||a||² + ||b||²) + s), gamma_D for each squared norm, u for
    ``||b||² - s``, (log2 D + 3) u for the canonical form; a 4x margin on top.
    """

    def __init__(self, points: torch.Tensor, sqradii: torch.Tensor | None = None) -> None:
        self.points = points
        sqnorms = points.square().sum(dim=1)
        shift = torch.zeros_like(sqnorms) if sqradii is None else sqradii
        ones = torch.ones_like(sqnorms)
        self.augmented = torch.cat(
            [-2.0 * points, ones[:, None], (sqnorms - shift)[:, None]], dim=1
        )
        self.max_bound_term = float((sqnorms + shift).max())
        dim = points.shape[1]
        eps = float(torch.finfo(torch.float64).eps)
        self.scale = 4.0 * eps * (3 * dim + 2 * np.log2(max(dim, 2)) + 16)
        # Memory budget (elements) for canonical rows: rows * M * D.
        self.rows_per_chunk = max(1, 2**22 // (points.shape[0] * dim))

    def screen(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``queries: (B, D)`` -> approx. ||a - b||² - s ``(B, M)``, row error bounds ``(B,)``."""
        sqnorms = queries.square().sum(dim=1)
        augmented = torch.cat([queries, sqnorms[:, None], torch.ones_like(sqnorms)[:, None]], dim=1)
        approx = augmented @ self.augmented.T
        bound = self.scale * (sqnorms + self.max_bound_term) + 1e-300
        return approx, bound

    def canonical_rows(self, queries: torch.Tensor) -> torch.Tensor:
        """Canonical squared distances of every query to every reference point, ``(B, M)``."""
        chunks = [
            _canonical_sqdist(queries[i : i + self.rows_per_chunk, None, :], self.points[None])
            for i in range(0, queries.shape[0], self.rows_per_chunk)
        ]
        return torch.cat(chunks)


def _kth_sqradii(points: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Squared distance of each point to its k-th nearest neighbour in the set, itself excluded.

    ``points: (N, D) -> (N,)``. The self distance is canonically 0, so the radius is the
    (k+1)-th smallest canonical squared distance of the row. The screen picks the few candidates:
    with T the row's error bound, the true (k+1)-th value is <= v + T (v: the approximate one)
    and every pair at or below it has approximate value <= v + 2T; the 2k + 2 smallest
    approximate values usually cover that range, else the whole row is computed canonically.
    """
    ref = _Reference(points)
    width = min(2 * k + 2, points.shape[0])
    radii = []
    for start in range(0, points.shape[0], batch_size):
        q = points[start : start + batch_size]
        approx, bound = ref.screen(q)
        values, index = approx.topk(width, dim=1, largest=False)
        covered = (values[:, -1] > values[:, k] + 2.0 * bound) | (width == points.shape[0])
        exact = _canonical_sqdist(q[:, None, :], points[index])
        rows = (~covered).nonzero(as_tuple=True)[0]
        kth = exact.topk(k + 1, dim=1, largest=False).values[:, -1]
        if rows.numel():
            full = ref.canonical_rows(q[rows]).topk(k + 1, dim=1, largest=False).values[:, -1]
            kth[rows] = full
        radii.append(kth)
    return torch.cat(radii)


def _inside_any_ball(
    queries: torch.Tensor, points: torch.Tensor, sqradii: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``queries: (B, D) -> (B,)`` bool: within (<=) the ball of at least one of ``points``.

    The screen gives ||a - b||² - r_b² up to the row's bound T: a row minimum below -T means some
    ball surely holds the query, above T that none does; rows in between are computed canonically.
    """
    ref = _Reference(points, sqradii)
    inside = []
    for start in range(0, queries.shape[0], batch_size):
        q = queries[start : start + batch_size]
        margin, bound = ref.screen(q)
        lowest = margin.min(dim=1).values
        decided_in = lowest < -bound
        rows = (lowest.abs() <= bound).nonzero(as_tuple=True)[0]
        if rows.numel():
            exact_in = (ref.canonical_rows(q[rows]) <= sqradii[None, :]).any(dim=1)
            decided_in[rows] = exact_in
        inside.append(decided_in)
    return torch.cat(inside)


def _as_points(x: np.ndarray | torch.Tensor, name: str, device: torch.device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) feature array, got shape {tuple(t.shape)}")
    t = t.detach().to(device=device, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def precision_recall(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    k: int = 3,
    batch_size: int = 1024,
) -> PrecisionRecall:
    """Improved precision and recall of ``fake: (M, D)`` against ``real: (N, D)``.

    Runs on the device of a torch input (both, if both are tensors, must share it), on the CPU for
    numpy inputs, in float64. Memory is O(batch_size * max(N, M)); the result does not depend on
    ``batch_size`` (see the module docstring). Needs N > k and M > k.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    devices = {x.device for x in (real, fake) if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"real and fake are on different devices: {sorted(map(str, devices))}")
    device = devices.pop() if devices else torch.device("cpu")
    real_t = _as_points(real, "real", device)
    fake_t = _as_points(fake, "fake", device)
    if real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(
            f"feature dimensions differ: real has D={real_t.shape[1]}, fake has D={fake_t.shape[1]}"
        )
    for name, t in (("real", real_t), ("fake", fake_t)):
        if t.shape[0] <= k:
            raise ValueError(f"{name} has {t.shape[0]} points; the k={k}-th neighbour needs > {k}")

    # Centring on one fixed point (the real mean) keeps norms, hence error bounds, small.
    center = real_t.mean(dim=0, keepdim=True)
    real_t = real_t - center
    fake_t = fake_t - center

    real_radii = _kth_sqradii(real_t, k, batch_size)
    fake_radii = _kth_sqradii(fake_t, k, batch_size)
    precision = _inside_any_ball(fake_t, real_t, real_radii, batch_size).double().mean()
    recall = _inside_any_ball(real_t, fake_t, fake_radii, batch_size).double().mean()
    return PrecisionRecall(precision=float(precision), recall=float(recall))
