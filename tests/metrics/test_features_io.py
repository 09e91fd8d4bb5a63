"""Feature caches (agm/metrics/features_io.py)."""

import numpy as np
import pytest

from agm.metrics import load_features, save_features


def test_round_trip(tmp_path):
    feats = np.random.default_rng(0).standard_normal((7, 5))
    path = tmp_path / "sub" / "real.npz"
    save_features(path, feats, "digits")
    loaded = load_features(path)
    assert loaded.space == "digits" and loaded.count == 7
    assert loaded.features.dtype == np.float32
    np.testing.assert_array_equal(loaded.features, feats.astype(np.float32))
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "real.npz"
    ]  # no temp files, no ".npz.npz"


def test_overwrite_replaces(tmp_path):
    path = tmp_path / "f.npz"
    save_features(path, np.zeros((2, 3)), "a")
    save_features(path, np.ones((4, 3)), "b")
    loaded = load_features(path)
    assert loaded.space == "b" and loaded.count == 4


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        save_features(tmp_path / "x.npz", np.zeros(3), "a")
    with pytest.raises(ValueError, match="NaN"):
        save_features(tmp_path / "x.npz", np.full((2, 2), np.inf), "a")
    with pytest.raises(ValueError, match="non-empty"):
        save_features(tmp_path / "x.npz", np.zeros((2, 2)), "")
    assert not (tmp_path / "x.npz").exists()


def test_load_checks_layout(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, mu=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        load_features(other)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, features=np.zeros((3, 2), np.float32), space=np.array("a"), count=np.array(4))
    with pytest.raises(ValueError, match="count"):
        load_features(wrong)
