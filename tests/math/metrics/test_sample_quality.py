"""Feature spaces: the metric record and the checked real features (agm/math/metrics/sample_quality.py)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import stage_error

from agm.config.errors import DataError, StaleFeaturesError
from agm.math.metrics import INCEPTION_WEIGHTS_FILENAME, save_features, weights_digest
from agm.math.metrics.inception import inception_cache_dir
from agm.math.metrics.sample_quality import DISTANCE_NAMES, SampleQuality, load_real_features, sample_quality

ROOT = Path(__file__).resolve().parents[3]


def _quality() -> SampleQuality:
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((200, 8)) + 0.3
    return sample_quality(real, fake, k=3)


@pytest.mark.parametrize("space", sorted(DISTANCE_NAMES))
def test_record_keys_order_and_rounding_are_those_the_stages_wrote(space):
    q = _quality()
    name = DISTANCE_NAMES[space]
    # the dicts stages/evaluate.py and stages/features.py wrote before the record existed
    former = {name: round(q.distance, 4), "precision": round(q.precision, 4), "recall": round(q.recall, 4)}
    record = q.record(space)
    assert list(record) == [name, "precision", "recall"]
    assert json.dumps(record) == json.dumps(former)


def test_unrounded_record_writes_the_same_steps_csv(tmp_path):
    """stages/steps.py writes the values unrounded and lets the CSV's %.5g format them."""
    q = _quality()
    former = {"step": 200, "fd_digits": q.distance, "precision": q.precision, "recall": q.recall}
    record = {"step": 200, **q.record("digits", ndigits=None)}
    assert all(record[key] is former[key] for key in former)
    csv = [pd.DataFrame([row]).to_csv(index=False, float_format="%.5g") for row in (former, record)]
    assert csv[0] == csv[1] and csv[0].startswith("step,fd_digits,precision,recall\n")


def _weights(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INCEPTION_WEIGHTS_FILENAME
    path.write_bytes(content)  # only the digest is read here
    return path


def test_load_real_features_returns_the_cached_train_features(tmp_path):
    feats = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    save_features(tmp_path / "train.npz", feats, "digits")
    real = load_real_features(tmp_path, "digits", "")
    assert real.space == "digits" and real.count == 5
    np.testing.assert_array_equal(real.features, feats)
    weights = _weights(tmp_path / "w", b"weights")
    save_features(tmp_path / "train.npz", feats, "inception", extractor=weights_digest(weights))
    assert load_real_features(tmp_path, "inception", weights).extractor == weights_digest(weights)


def test_load_real_features_refuses_another_space_on_one_line(tmp_path):
    save_features(tmp_path / "train.npz", np.zeros((4, 2)), "digits")
    with pytest.raises(StaleFeaturesError) as info:
        load_real_features(tmp_path, "inception", tmp_path / "never-read.pt")
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    assert str(tmp_path / "train.npz") in message and "'digits'" in message and "'inception'" in message
    assert "re-run the features stage" in message


def test_load_real_features_refuses_inception_features_of_other_weights(tmp_path):
    weights = _weights(tmp_path / "w", b"old")
    save_features(tmp_path / "train.npz", np.zeros((4, 2)), "inception", extractor=weights_digest(weights))
    _weights(tmp_path / "w", b"new")
    with pytest.raises(StaleFeaturesError, match="re-run the features stage"):
        load_real_features(tmp_path, "inception", weights)


def test_auto_checks_the_cached_weights_and_refuses_features_of_others(tmp_path, monkeypatch):
    """A file pre-placed in torch's cache is what ``auto`` means (no download); replacing it is caught as for a
    path, and the error names the cached file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = _weights(inception_cache_dir(), b"old")
    save_features(tmp_path / "train.npz", np.zeros((4, 2)), "inception", extractor=weights_digest(cached))
    assert load_real_features(tmp_path, "inception", "auto").extractor == weights_digest("auto")
    _weights(inception_cache_dir(), b"new")
    with pytest.raises(StaleFeaturesError, match="re-run the features stage") as info:
        load_real_features(tmp_path, "inception", "auto")
    assert str(cached) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("stage", ["evaluate", "steps"])
def test_stages_refuse_features_of_another_space_before_any_work(tmp_path, stage, monkeypatch, capsys):
    """One line, exit 2, before samples or models are read (none exist here)."""

    features = tmp_path / "features"
    save_features(features / "train.npz", np.zeros((4, 2)), "inception", extractor="0" * 64)
    err = stage_error(stage, tmp_path, features, dict(feature_space="digits"), monkeypatch, capsys)
    assert "'inception' features but eval.feature_space is 'digits'" in err


@pytest.mark.parametrize(("space", "name"), [("digits", "kd_digits"), ("inception", "kid")])
def test_record_with_the_kernel_distance_names_it_for_its_space(space, name):
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 8)), rng.standard_normal((200, 8)) + 0.3
    q = sample_quality(real, fake, k=3, kernel_seed=0)
    record = q.record(space)
    assert list(record) == [DISTANCE_NAMES[space], name, "precision", "recall"]
    assert record[name] == float(f"{q.kernel_distance:.4g}") and q.kernel_distance > 0  # shifted by 0.3: MMD² > 0
    assert sample_quality(real, fake, k=3, kernel_seed=0).kernel_distance == q.kernel_distance  # one fixed draw


def test_the_extractor_runs_in_full_float32_whatever_the_stage_switched_on(tmp_path, monkeypatch):
    """A sampling stage turns TF32 on for its generator (configure_backends); the features it scores must be those
    the evaluate stage computes, so the extractor runs with TF32 off and restores the caller's settings."""
    import torch

    from agm.math.metrics import sample_quality as sq

    seen = []
    monkeypatch.setattr(sq, "load_feature_net", lambda path, device: None)
    monkeypatch.setattr(sq, "extract_features", lambda net, images, **kw: seen.append(
        (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)) or images)
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
        extract = sq.feature_extractor("digits", feature_net=tmp_path / "net.pt")
        assert extract(np.zeros((1, 1, 8, 8), np.uint8)).shape == (1, 1, 8, 8)
        assert seen == [("highest", False)]
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("high", True)
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]
