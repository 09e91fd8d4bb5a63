"""Fréchet distance against closed forms (agm/math/metrics/frechet.py)."""

import numpy as np
import pytest
from scipy import linalg

from agm.math.metrics import frechet_distance, frechet_distance_from_stats, gaussian_stats


def _random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def _closed_form(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½), via scipy's general sqrtm."""
    r1 = linalg.sqrtm(s1).real
    cross = linalg.sqrtm(r1 @ s2 @ r1).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * cross))


def test_diagonal_covariances_match_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, -1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_one_dimensional_is_squared_wasserstein():
    got = frechet_distance_from_stats(
        np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[1.0]])
    )
    assert got == pytest.approx(2.0**2 + (2.0 - 1.0) ** 2, rel=1e-12)


def test_full_covariances_match_closed_form():
    rng = np.random.default_rng(0)
    for dim in (2, 5, 16):
        mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
        s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
        expected = _closed_form(mu1, s1, mu2, s2)
        assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
        # symmetric in its two arguments
        assert frechet_distance_from_stats(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)


def test_samples_converge_to_population_value():
    rng = np.random.default_rng(1)
    dim, n = 3, 200_000
    mu1, mu2 = np.zeros(dim), np.array([1.0, 0.0, -0.5])
    s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
    a = rng.multivariate_normal(mu1, s1, size=n)
    b = rng.multivariate_normal(mu2, s2, size=n)
    expected = _closed_form(mu1, s1, mu2, s2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_identical_sets_give_zero_and_invariances_hold():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((500, 8))
    b = rng.standard_normal((400, 8)) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)
    base = frechet_distance(a, b)
    assert frechet_distance(a + 7.0, b + 7.0) == pytest.approx(base, rel=1e-9)
    assert frechet_distance(3.0 * a, 3.0 * b) == pytest.approx(9.0 * base, rel=1e-9)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    assert frechet_distance(a @ q, b @ q) == pytest.approx(base, rel=1e-9)


def test_fewer_samples_than_dimensions_is_allowed():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 20)), rng.standard_normal((6, 20))
    stats = gaussian_stats(a)
    assert np.linalg.matrix_rank(stats.sigma) == 4  # singular: rank N - 1
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-10)


def test_gaussian_stats_are_float64_unbiased():
    feats = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], dtype=np.float32)
    stats = gaussian_stats(feats)
    assert stats.mu.dtype == np.float64 and stats.count == 3
    np.testing.assert_allclose(stats.mu, [2.0, 4.0])
    np.testing.assert_allclose(stats.sigma, np.cov(feats.astype(np.float64), rowvar=False))


def test_errors():
    rng = np.random.default_rng(4)
    ok = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(ok[:1], ok)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(ok, ok[:1])
    with pytest.raises(ValueError, match="feature dimensions differ"):
        frechet_distance(ok, rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance(ok[:, 0], ok)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((4, 3), np.nan), ok)
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance_from_stats(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
