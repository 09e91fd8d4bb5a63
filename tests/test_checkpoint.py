"""Tests for agm/checkpoint.py: atomic saves, refusing foreign or mismatched files, model files."""

from __future__ import annotations

import pytest
import torch

from agm.action_matching import ActionDrift, ActionNet
from agm.checkpoint import (
    CheckpointMismatchError,
    config_digest,
    load_checkpoint,
    load_drift,
    load_potential,
    save_checkpoint,
    save_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = {"lambda": 0.1, "seed": 0, "model": {"base_channels": 16, "channel_mult": [1, 2, 2]}}


def _state(step: int = 3, config=CONFIG) -> dict:
    return {"step": step, "weights": torch.arange(6.0).reshape(2, 3), "config": config}


def test_save_and_load_round_trip_leaves_no_temp_file(tmp_path):
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint(path, _state(step=3))
    save_checkpoint(path, _state(step=4))  # overwrite in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt"]
    state = load_checkpoint(path, CONFIG)
    assert state["step"] == 4 and torch.equal(state["weights"], torch.arange(6.0).reshape(2, 3))


def test_failed_save_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _state(step=3))
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        save_checkpoint(path, {"step": 4, "unpicklable": lambda: None})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


def test_mismatched_config_names_the_differing_keys(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _state(config={"a": 1, "b": 2, "c": 3, "same": [1, 2]}))
    with pytest.raises(CheckpointMismatchError, match=r"differs in: b, c, d\)") as info:
        load_checkpoint(path, {"a": 1, "b": 5, "d": 4, "same": [1, 2]})
    assert "same" not in str(info.value) and "a," not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert load_checkpoint(path)["step"] == 3  # no config given: no check


def test_nested_config_change_names_the_top_level_key(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _state())
    changed = {**CONFIG, "model": {**CONFIG["model"], "base_channels": 32}}
    with pytest.raises(CheckpointMismatchError, match=r"differs in: model\)"):
        load_checkpoint(path, changed)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all\n", b"PK\x03\x04garbage"])
def test_garbage_file_is_a_mismatch(tmp_path, content):
    path = tmp_path / "latest.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointMismatchError, match="unreadable"):
        load_checkpoint(path, CONFIG)


def test_truncated_checkpoint_is_a_mismatch(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointMismatchError):
        load_checkpoint(path, CONFIG)


def test_torch_file_that_is_not_a_dict_is_a_mismatch(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointMismatchError, match="not a checkpoint"):
        load_checkpoint(path, CONFIG)


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", CONFIG)


def test_config_digest_is_stable_and_order_insensitive():
    # sha256 of the canonical JSON '{"lambda": 0.1, "model": {"base_channels": 16, ...}, "seed": 0}'
    assert config_digest(CONFIG) == "59c5bb23f672"
    model = {"channel_mult": [1, 2, 2], "base_channels": 16}
    reordered = {"model": model, "seed": 0, "lambda": 0.1}
    assert config_digest(reordered) == config_digest(CONFIG)
    assert config_digest({**CONFIG, "seed": 1}) != config_digest(CONFIG)
    assert config_digest({**CONFIG, "model": {**CONFIG["model"], "channel_mult": [2, 1, 2]}}) \
        != config_digest(CONFIG)  # list order matters
    digest = config_digest(CONFIG)
    assert len(digest) == 12 and int(digest, 16) >= 0


def _trained_nets(make_unet, make_potential):
    f, V = make_unet(), make_potential()
    with torch.no_grad():
        torch.nn.init.normal_(f.conv_out.weight, std=0.1)  # a drift that is not identically zero
    return f, V


def test_model_file_round_trip(tmp_path, make_unet, make_potential, tiny_unet_kwargs,
                               tiny_potential_kwargs):
    f, V = _trained_nets(make_unet, make_potential)
    path = tmp_path / "model" / "model.pt"
    save_model(path, ema=f.state_dict(), unet=tiny_unet_kwargs, potential=V.state_dict(),
               potential_kwargs=tiny_potential_kwargs, step=7, lam=0.1)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]
    f2, V2 = load_drift(path), load_potential(path)
    for a, b in ((f, f2), (V, V2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not b.training and not any(p.requires_grad for p in b.parameters())
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert f2(x, t).abs().max() > 0
    assert torch.equal(f2(x, t), f.eval()(x, t)) and torch.equal(V2(x), V.eval()(x))
    state = load_checkpoint(path)
    assert state["step"] == 7 and state["lambda"] == 0.1


def test_load_drift_with_snapshot_weights(tmp_path, make_unet, make_potential, tiny_unet_kwargs):
    f, _ = _trained_nets(make_unet, make_potential)
    snapshot = make_unet(seed=5).state_dict()
    path = tmp_path / "model.pt"
    save_model(path, ema=f.state_dict(), unet=tiny_unet_kwargs, potential=None,
               potential_kwargs=None, step=1, lam=0.0)
    loaded = load_drift(path, state=snapshot)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in snapshot.items())


def test_load_potential_of_a_baseline_model_raises(tmp_path, make_unet, tiny_unet_kwargs):
    path = tmp_path / "model.pt"
    save_model(path, ema=make_unet().state_dict(), unet=tiny_unet_kwargs, potential=None,
               potential_kwargs=None, step=1, lam=0.0)
    load_drift(path)  # the drift is there
    with pytest.raises(ValueError, match="baseline"):
        load_potential(path)


def test_action_model_file_keeps_its_time_scale(tmp_path, tiny_unet_kwargs):
    torch.manual_seed(0)
    s = ActionNet(time_scale=0.05, **tiny_unet_kwargs)
    with torch.no_grad():
        torch.nn.init.normal_(s.u.conv_out.weight, std=0.1)
    path = tmp_path / "model.pt"
    save_model(path, ema=s.state_dict(), unet=tiny_unet_kwargs, potential=None, potential_kwargs=None,
               step=1, lam=0.0, kind="action", time_scale=0.05)
    drift = load_drift(path)
    assert isinstance(drift, ActionDrift) and drift.s.time_scale == 0.05
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    torch.testing.assert_close(drift(x, t), ActionDrift(s.eval())(x, t))
    with pytest.raises(ValueError, match="time_scale"):
        save_model(path, ema=s.state_dict(), unet=tiny_unet_kwargs, potential=None, potential_kwargs=None,
                   step=1, lam=0.0, kind="action")
