"""Memorisation statistics (agm/math/memorisation.py): brute force, closed forms and constructed cases."""

import importlib

import numpy as np
import pytest

from agm.math.memorisation import Memorisation, memorisation, nearest, nearest_two, real_reference

# the module itself (its private helpers), even if the package later exports a function of the same name
mem_module = importlib.import_module("agm.math.memorisation")


def _brute_sorted(queries: np.ndarray, points: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """All query-to-point distances, each row sorted ascending (the point itself skipped with exclude_self)."""
    d = np.sqrt(((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)


@pytest.fixture
def canonical_row_calls(monkeypatch) -> list[int]:
    """Counts the rows computed in full (the fallback when the screened candidates may miss a neighbour)."""
    calls: list[int] = []
    original = mem_module._Reference.canonical_rows

    def counting(self, queries):
        calls.append(queries.shape[0])
        return original(self, queries)

    monkeypatch.setattr(mem_module._Reference, "canonical_rows", counting)
    return calls


def test_nearest_matches_brute_force_and_is_identical_across_batch_sizes():
    rng = np.random.default_rng(0)
    queries, points = rng.standard_normal((300, 5)), rng.standard_normal((150, 5))
    brute = _brute_sorted(queries, points)
    # Both sides sum the same D = 5 squared coordinate differences of the inputs, in different orders: each sum is
    # within (D - 1) u of the exact one (u = 2^-53), so the distances agree to a relative ~D u = 6e-16 (the
    # selection of neighbours is exact, see the module). 1e-12 leaves a factor ~1000.
    rtol = 1e-12
    results = {bs: (nearest_two(queries, points, batch_size=bs), nearest(queries, points, batch_size=bs))
               for bs in (1, 7, 64, 300, 2048)}
    for (d1, d2), d in results.values():
        np.testing.assert_allclose(d1, brute[:, 0], rtol=rtol, atol=0)
        np.testing.assert_allclose(d2, brute[:, 1], rtol=rtol, atol=0)
        np.testing.assert_array_equal(d, d1)
    # every returned distance is a pair's own sum of squares, whatever the batch: bit-identical results
    (d1_ref, d2_ref), _ = results[1]
    for (d1, d2), _ in results.values():
        np.testing.assert_array_equal(d1, d1_ref)
        np.testing.assert_array_equal(d2, d2_ref)


def test_ties_beyond_the_candidates_fall_back_to_full_rows(canonical_row_calls):
    # a query at the origin with 2 D points at distance 1 (±e_i) and others farther: the 2 k + 2 = 6 screened
    # candidates are all tied, so the row must be computed in full; the answer is still (1, 1)
    dim = 5
    unit = np.vstack([np.eye(dim), -np.eye(dim)])
    points = np.vstack([unit, 3.0 * unit])
    d1, d2 = nearest_two(np.zeros((1, dim)), points)
    assert (d1[0], d2[0]) == (1.0, 1.0)
    assert canonical_row_calls == [1]


def test_exact_copies_of_all_training_points_when_heldout_is_as_large_as_train():
    # K = N: the equal-size subset is all of T, so every copy sits on a point of T_K
    rng = np.random.default_rng(1)
    train, heldout = rng.random((400, 16)), rng.random((400, 16))
    samples = train[rng.permutation(400)] + 1e-6 * rng.standard_normal((400, 16))
    m = memorisation(samples, train, heldout, seed=0)
    assert m.copy_share == 1.0
    assert m.train_heldout_ratio < 0.01
    assert m.closer_to_train_share == 1.0
    assert (m.n_samples, m.n_train, m.n_heldout) == (400, 400, 400)


def test_exact_copies_are_diluted_in_the_equal_size_statistics():
    # each training point copied once, K / N = 1/4: copy_share sees them all; of the equal-size statistics,
    # the K copies of T_K points are closer to T_K, and a copy of any other point is an independent fresh draw
    # to both T_K and H (P(dt < dh) = 1/2): E[closer_to_train_share] = 1/4 + 3/4 * 1/2 = 0.625, and the
    # median of dt is the (1/2 - 1/4) / (3/4) = 1/3 quantile of the fresh part, whose law is that of dh.
    # Over 40 seeds at these sizes the share had sd 0.008 and (ratio - that quantile ratio) sd 0.0064:
    # the +-0.04 bounds are 5 and 6 sd.
    rng = np.random.default_rng(2)
    train, heldout = rng.standard_normal((4000, 8)), rng.standard_normal((1000, 8))
    samples = train + 1e-6 * rng.standard_normal(train.shape)
    m = memorisation(samples, train, heldout, seed=3)
    assert m.copy_share == 1.0
    assert abs(m.closer_to_train_share - 0.625) < 0.04
    dh = nearest(samples, heldout)
    assert m.nn_heldout_median == np.median(dh)
    assert abs(m.train_heldout_ratio - np.quantile(dh, 1 / 3) / np.median(dh)) < 0.04
    assert m.nn_train_median < 1e-5


def test_fresh_samples_from_the_training_distribution():
    # T, H and G iid N(0, I_8). Locally the points are a Poisson process, for which (d1 / d2)^D is uniform on
    # [0, 1]: E[copy_share] = 3^-8 = 1.5e-4, so 5000 samples expect 0.76 "copies"; < 0.005 means < 25 (Poisson
    # tail ~1e-20). By symmetry dt_K and dh are equal in law (K = 1000 each): over 40 seeds the ratio had sd 0.006
    # and the share sd 0.0083 (binomial 0.0071 plus the two reference sets' own variation), so the bounds
    # 0.9-1.1 and 0.45-0.55 are 16 and 6 sd wide.
    rng = np.random.default_rng(4)
    train, heldout, samples = (rng.standard_normal((n, 8)) for n in (4000, 1000, 5000))
    m = memorisation(samples, train, heldout, seed=5)
    assert m.copy_share < 0.005
    assert 0.9 < m.train_heldout_ratio < 1.1
    assert 0.45 < m.closer_to_train_share < 0.55
    assert m.train_heldout_ratio == m.nn_train_equal_n_median / m.nn_heldout_median
    # T_K has fewer points than T: its nearest neighbours are farther
    assert m.nn_train_equal_n_median > m.nn_train_median


def test_copy_share_of_fresh_points_in_two_dimensions_is_one_ninth():
    # the same Poisson argument at D = 2: E[copy_share] = 3^-2 = 1/9; binomial sd sqrt(1/9 * 8/9 / 4000) = 0.005
    # (40 seeds: mean 0.1105, sd 0.0048), so +-0.03 is 6 sd
    rng = np.random.default_rng(6)
    train, heldout, samples = (rng.standard_normal((n, 2)) for n in (4000, 100, 4000))
    assert abs(memorisation(samples, train, heldout, seed=0).copy_share - 1 / 9) < 0.03


def test_one_dimensional_closed_form():
    train, heldout = np.array([[0.0], [10.0], [20.0]]), np.array([[5.0]])
    # sample 1: d1 = 1, d2 = 9, dh = 4; 1 < 9 / 3, a copy
    m = memorisation(np.array([[1.0]]), train, heldout, seed=0)
    assert (m.copy_share, m.nn_train_median, m.nn_heldout_median) == (1.0, 1.0, 4.0)
    assert m.nn_train_equal_n_median in (1.0, 9.0, 19.0)  # T_1 is one of the three training points
    assert nearest_two(np.array([[1.0]]), train) == (np.array([1.0]), np.array([9.0]))
    # sample 4: d1 = 4, d2 = 6, dh = 1; 4 > 6 / 3, not a copy
    m = memorisation(np.array([[4.0]]), train, heldout, seed=0)
    assert (m.copy_share, m.nn_train_median, m.nn_heldout_median) == (0.0, 4.0, 1.0)
    both = memorisation(np.array([[1.0], [4.0]]), train, heldout, seed=0)
    assert both.copy_share == 0.5
    assert both.nn_heldout_median == 2.5  # median of dh = 4 and 1


def test_equal_size_subset_is_drawn_from_the_seed():
    rng = np.random.default_rng(7)
    train, heldout, samples = rng.random((500, 4)), rng.random((50, 4)), rng.random((200, 4))
    a, b = (memorisation(samples, train, heldout, seed=s) for s in (11, 11))
    assert a == b
    # the subset is rng.choice(N, K, replace=False) of default_rng(seed)
    subset = np.random.default_rng(11).choice(500, size=50, replace=False)
    assert a.nn_train_equal_n_median == np.median(nearest(samples, train[subset]))
    assert memorisation(samples, train, heldout, seed=12).nn_train_equal_n_median != a.nn_train_equal_n_median


def test_higher_rank_inputs_are_flattened_from_dim_1():
    rng = np.random.default_rng(8)
    train, heldout, samples = rng.random((60, 1, 2, 3)), rng.random((20, 1, 2, 3)), rng.random((30, 1, 2, 3))
    flat = memorisation(samples.reshape(30, 6), train.reshape(60, 6), heldout.reshape(20, 6), seed=0)
    assert memorisation(samples, train, heldout, seed=0) == flat


def test_record_prefixes_the_headline_statistics():
    m = Memorisation(copy_share=0.1, nn_train_median=1.0, nn_heldout_median=2.0, nn_train_equal_n_median=1.5,
                     train_heldout_ratio=0.75, closer_to_train_share=0.6, n_samples=10, n_train=20, n_heldout=5)
    assert m.record("px_") == {"px_copy_share": 0.1, "px_train_heldout_ratio": 0.75,
                               "px_closer_to_train_share": 0.6, "px_nn_train_median": 1.0,
                               "px_nn_heldout_median": 2.0}


def test_real_reference_of_iid_data():
    # the held-out points are fresh draws, each compared with the K - 1 others and a (K - 1)-point T subset:
    # over 40 seeds at these sizes the ratio had sd 0.011 and the share sd 0.019, so 0.85-1.15 and 0.4-0.6
    # are 13 and 5 sd wide
    rng = np.random.default_rng(9)
    train, heldout = rng.standard_normal((4000, 8)), rng.standard_normal((1000, 8))
    r = real_reference(train, heldout, seed=0)
    assert 0.85 < r.train_heldout_ratio < 1.15
    assert 0.4 < r.closer_to_train_share < 0.6
    assert r.copy_share < 0.01
    assert (r.n_samples, r.n_train, r.n_heldout) == (1000, 4000, 1000)
    subset = np.random.default_rng(0).choice(4000, size=999, replace=False)
    assert r.nn_train_equal_n_median == np.median(nearest(heldout, train[subset]))
    assert r.nn_train_median == np.median(nearest(heldout, train))


def test_real_reference_skips_each_point_itself_but_not_its_duplicate():
    # held-out 0, 0, 10, 13: the nearest other point gives dh = 0, 0, 3, 3 (median 1.5); without the exclusion
    # every dh would be 0, and dropping duplicates would give 10, 10, 3, 3 (median 6.5)
    train = np.array([[100.0], [200.0], [300.0], [400.0]])
    heldout = np.array([[0.0], [0.0], [10.0], [13.0]])
    assert real_reference(train, heldout, seed=0).nn_heldout_median == 1.5


def test_self_exclusion_per_point_on_a_lattice(canonical_row_calls):
    # a 5 x 5 unit lattice plus a copy of its (0, 0) corner: the pair is at dh = 0, every other point at 1.
    # The 9 interior points, and (0, 1) and (1, 0) that touch the doubled corner twice, have 4 neighbours tied at
    # 1 = the whole 2 k + 2 = 4 candidate width, so those 11 rows are computed in full, with the point itself
    # skipped there too.
    grid = np.array([[i, j] for i in range(5) for j in range(5)], dtype=np.float64)
    heldout = np.vstack([grid, grid[:1]])
    sq = mem_module._nearest_sqdists(heldout, heldout, 1, batch_size=4, exclude_self=True)[:, 0]
    expected = np.ones(26)
    expected[[0, 25]] = 0.0
    np.testing.assert_array_equal(sq, expected)
    np.testing.assert_array_equal(np.sqrt(sq), _brute_sorted(heldout, heldout, exclude_self=True)[:, 0])
    assert sum(canonical_row_calls) == 11


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda z: memorisation(z((5, 3)), z((10, 4)), z((5, 3)), seed=0), "train has D=4"),
        (lambda z: memorisation(z((5, 3)), z((10, 3)), z((5, 2)), seed=0), "heldout has D=2"),
        (lambda z: memorisation(z((5, 3)), z((10, 3)), z((0, 3)), seed=0), "heldout is empty"),
        (lambda z: memorisation(z((5, 3)), z((1, 3)), z((1, 3)), seed=0), "train needs at least 2"),
        (lambda z: memorisation(z((5, 3)), z((3, 3)), z((4, 3)), seed=0), "train has 3 points, fewer than heldout"),
        (lambda z: memorisation(z((0, 3)), z((3, 3)), z((2, 3)), seed=0), "samples is empty"),
        (lambda z: memorisation(z((5,)), z((3, 3)), z((2, 3)), seed=0), "samples must have"),
        (lambda z: memorisation(z((5, 3)), z((3, 3)), z((2, 3)), seed=0, batch_size=0), "batch_size"),
        (lambda z: memorisation(z((5, 3)), np.full((3, 3), np.nan), z((2, 3)), seed=0), "train contains NaN"),
        (lambda z: real_reference(z((10, 4)), z((5, 3)), seed=0), "train has D=4"),
        (lambda z: real_reference(z((10, 3)), z((0, 3)), seed=0), "heldout is empty"),
        (lambda z: real_reference(z((1, 3)), z((1, 3)), seed=0), "train needs at least 2"),
        (lambda z: real_reference(z((10, 3)), z((1, 3)), seed=0), "heldout needs at least 2"),
        (lambda z: nearest_two(z((5, 3)), z((1, 3))), "points needs at least 2"),
        (lambda z: nearest(z((5, 3)), z((0, 3))), "points is empty"),
        (lambda z: nearest(z((5, 2)), z((4, 3))), "queries has D=2, points has D=3"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.zeros)
