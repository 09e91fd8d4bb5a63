"""Feature caches (agm/math/metrics/features_io.py)."""

import numpy as np
import pytest

from agm.config.errors import DataError, StaleFeaturesError
from agm.math.metrics import check_extractor, load_features, save_features


def test_round_trip(tmp_path):
    feats = np.random.default_rng(0).standard_normal((7, 5))
    path = tmp_path / "sub" / "real.npz"
    save_features(path, feats, "digits")
    loaded = load_features(path)
    assert loaded.space == "digits" and loaded.count == 7 and loaded.extractor == ""
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
    np.savez(wrong, features=np.zeros((3, 2), np.float32), space=np.array("a"), count=np.array(4),
             extractor=np.array(""))
    with pytest.raises(ValueError, match="count"):
        load_features(wrong)


def test_extractor_digest_round_trips(tmp_path):
    path = tmp_path / "train.npz"
    save_features(path, np.zeros((3, 2)), "inception", extractor="ab" * 32)
    assert load_features(path).extractor == "ab" * 32


def test_file_without_extractor_field_fails_clearly(tmp_path):
    """A cache written before the digest existed is refused (a user error), not trusted."""
    old = tmp_path / "train.npz"
    np.savez(old, features=np.zeros((3, 2), np.float32), space=np.array("inception"), count=np.array(3))
    with pytest.raises(DataError, match=r"missing \['extractor'\]; re-run the features stage") as info:
        load_features(old)
    assert str(old) in str(info.value)


def test_check_extractor_refuses_other_weights_naming_file_weights_and_both_hashes(tmp_path):
    path = tmp_path / "train.npz"
    old, new = "a" * 64, "b" * 64
    save_features(path, np.zeros((3, 2)), "inception", extractor=old)
    feats = load_features(path)
    check_extractor(feats, path, old, "w/inception-2015-12-05.pt")  # same weights: no error
    with pytest.raises(StaleFeaturesError) as info:
        check_extractor(feats, path, new, "w/inception-2015-12-05.pt")
    message = str(info.value)
    assert isinstance(info.value, DataError)  # a user error: one line, exit 2 (stages.USER_ERRORS)
    assert "\n" not in message
    assert str(path) in message and "w/inception-2015-12-05.pt" in message
    assert old in message and new in message and "re-run the features stage" in message
