"""Tests for agm/checkpoint.py: atomic saves, refusing foreign or mismatched files."""

from __future__ import annotations

import pytest
import torch

from agm.checkpoint import (
    CheckpointMismatchError,
    clear_run,
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
    assert resume_state(tmp_path, CONFIG, steps=5) == (None, "")
    save_checkpoint(tmp_path / "latest.pt", _state(step=3))
    state, why = resume_state(tmp_path, CONFIG, steps=5)
    assert state["step"] == 3 and why == ""
    state, why = resume_state(tmp_path, {**CONFIG, "data": "f00"}, steps=5)
    assert state is None and "differs in: data" in why
    state, why = resume_state(tmp_path, CONFIG, steps=2)
    assert state is None and "past the 2 steps" in why
    (tmp_path / "latest.pt").write_bytes(b"garbage")
    state, why = resume_state(tmp_path, CONFIG, steps=5)
    assert state is None and "unreadable" in why


def test_clear_run_removes_the_run_files_only(tmp_path):
    for name in ("latest.pt", "ema_00000002.pt", ".latest.pt.abc.tmp", "notes.txt"):
        (tmp_path / name).write_text("x")
    gone = clear_run(tmp_path)
    assert sorted(p.name for p in gone) == [".latest.pt.abc.tmp", "ema_00000002.pt", "latest.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert clear_run(tmp_path / "missing") == []
