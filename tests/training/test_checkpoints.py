"""Tests for agm/training/checkpoints.py: atomic saves, refusing foreign or mismatched files, deleting none."""

from __future__ import annotations

import pytest
import torch

from agm.config.errors import CheckpointMismatchError
from agm.training.checkpoints import (
    config_differences,
    load_checkpoint,
    resume_state,
    save_checkpoint,
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


def test_nested_config_change_names_the_nested_key(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _state())
    changed = {**CONFIG, "model": {**CONFIG["model"], "base_channels": 32}}
    with pytest.raises(CheckpointMismatchError, match=r"differs in: model.base_channels\)"):
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


def test_config_differences_name_nested_keys():
    other = {**CONFIG, "seed": 1, "model": {**CONFIG["model"], "channel_mult": [2, 1, 2]}, "code": "abc"}
    assert config_differences(CONFIG, other) == ["code", "model.channel_mult", "seed"]
    assert config_differences(CONFIG, dict(reversed(CONFIG.items()))) == []


def test_resume_state_only_for_the_same_run_not_past_the_steps(tmp_path):
    assert resume_state(tmp_path, CONFIG, steps=5) is None
    save_checkpoint(tmp_path / "latest.pt", _state(step=3))
    assert resume_state(tmp_path, CONFIG, steps=5)["step"] == 3


@pytest.mark.parametrize("config,steps,content,match", [
    ({**CONFIG, "data": "f00"}, 5, None, r"belongs to another run \(differs in: data\)"),
    (CONFIG, 2, None, "past the 2 steps"),
    (CONFIG, 5, b"garbage", "unreadable"),
])
def test_resume_state_refuses_what_it_cannot_resume_and_deletes_nothing(tmp_path, config, steps, content, match):
    save_checkpoint(tmp_path / "latest.pt", _state(step=3))
    snapshot = tmp_path / "ema_00000002.pt"
    snapshot.write_bytes(b"x")
    if content is not None:
        (tmp_path / "latest.pt").write_bytes(content)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointMismatchError, match=match) as info:
        resume_state(tmp_path, config, steps=steps)
    assert str(tmp_path / "latest.pt") in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
