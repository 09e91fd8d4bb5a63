"""FeatureNet: the default profile's feature space (agm/math/metrics/feature_net.py)."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import NET_CONDITION, accumulation_terms, reordered_tol
from sklearn.datasets import load_digits

from agm.io.data import to_model_range
from agm.math.metrics import (
    FeatureNet,
    extract_features,
    frechet_distance,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from agm.math.metrics.feature_net import images_to_input

TRAIN_SIZE = 1438  # the default profile's 80 % split of the 1,797 digits


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits, bilinearly upsampled to 16x16 uint8, split 1438 / 359."""
    data = load_digits()
    x = torch.from_numpy(data.images).float()[:, None] / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    images = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    order = np.random.default_rng(0).permutation(len(images))
    train, held = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
    return images[train], data.target[train], images[held], data.target[held]


@pytest.fixture(scope="module")
def trained(digits):
    x_tr, y_tr, x_ho, y_ho = digits
    start = time.perf_counter()
    result = train_feature_net(
        x_tr,
        y_tr,
        epochs=8,
        batch_size=64,
        lr=2e-3,
        seed=0,
        heldout_images=x_ho,
        heldout_labels=y_ho,
    )
    return result, time.perf_counter() - start


def test_trains_to_high_heldout_accuracy_quickly(trained):
    result, seconds = trained
    assert result.heldout_accuracy > 0.9
    assert result.train_accuracy > 0.9
    assert seconds < 30.0
    assert not result.model.training


def test_extract_features_shape_dtype_and_batch_independence(trained, digits):
    model = trained[0].model
    images = digits[2]
    feats = extract_features(model, images, batch_size=64)
    assert feats.shape == (len(images), 64) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert feats.std(axis=0).min() > 0  # no dead coordinates
    # batches of 1000 and of 64 run other kernels (other sums' orders): helpers.reordered_tol of one forward pass
    terms = accumulation_terms(model, to_model_range(torch.from_numpy(images[:2])), backward=False)
    tol = reordered_tol(torch.float32, terms=terms, scale=float(np.abs(feats).max()), condition=NET_CONDITION)
    np.testing.assert_allclose(extract_features(model, images, batch_size=1000), feats, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="expects"):
        extract_features(model, np.zeros((2, 3, 16, 16), np.uint8))


def test_fd_separates_real_from_mode_dropped_and_scrambled_digits(trained, digits):
    model = trained[0].model
    x_tr, y_tr, x_ho, _ = digits
    real_a = extract_features(model, x_tr[:359])
    real_b = extract_features(model, x_ho)
    half_modes = extract_features(model, x_tr[y_tr < 5][:359])
    shuffled = x_ho.reshape(len(x_ho), -1)[:, np.random.default_rng(0).permutation(256)]
    scrambled = extract_features(model, shuffled.reshape(x_ho.shape))
    fd_real = frechet_distance(real_a, real_b)
    assert frechet_distance(real_a, half_modes) > 4 * fd_real
    assert frechet_distance(real_a, scrambled) > 20 * fd_real


def test_deterministic_given_seed_and_leaves_global_rng(digits):
    x, y = digits[0][:256], digits[1][:256]
    rng_state = torch.get_rng_state()
    first = train_feature_net(x, y, epochs=1, batch_size=64, lr=1e-3, seed=7).model
    assert torch.equal(torch.get_rng_state(), rng_state)
    second = train_feature_net(x, y, epochs=1, batch_size=64, lr=1e-3, seed=7).model
    other = train_feature_net(x, y, epochs=1, batch_size=64, lr=1e-3, seed=8).model
    for (name, p1), p2, _p3 in zip(
        first.state_dict().items(),
        second.state_dict().values(),
        other.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(p1, p2), name
    assert not all(
        torch.equal(p1, p3) for p1, p3 in zip(first.parameters(), other.parameters(), strict=True)
    )


def test_save_load_round_trip(trained, digits, tmp_path):
    model = trained[0].model
    path = tmp_path / "feature_net.pt"
    save_feature_net(path, model)
    loaded = load_feature_net(path)
    assert isinstance(loaded, FeatureNet) and not loaded.training
    assert loaded.kwargs == model.kwargs
    np.testing.assert_array_equal(  # the same weights, the same batches, one process: bitwise
        extract_features(loaded, digits[2]), extract_features(model, digits[2])
    )
    assert [p.name for p in tmp_path.iterdir()] == ["feature_net.pt"]


def test_input_validation(digits):
    x, y = digits[0][:10], digits[1][:10]
    with pytest.raises(ValueError, match="labels"):
        train_feature_net(x, y[:5], epochs=1, batch_size=4, lr=1e-3, seed=0)
    with pytest.raises(ValueError, match="both"):
        train_feature_net(x, y, epochs=1, batch_size=4, lr=1e-3, seed=0, heldout_images=x)
    with pytest.raises(ValueError, match="uint8"):
        train_feature_net(x.astype(np.float32), y, epochs=1, batch_size=4, lr=1e-3, seed=0)


def test_input_is_the_model_range_bit_for_bit():
    """images_to_input is agm.io.data.to_model_range: every uint8 value gives exactly the former x / 127.5 - 1."""
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = images_to_input(values.numpy(), torch.device("cpu"))
    assert x.dtype == torch.float32
    assert torch.equal(x, values.to(dtype=torch.float32) / 127.5 - 1.0)
    assert torch.equal(x, to_model_range(values))
