"""Tests for agm/io/atomic.py: atomic files and folders, and the modes they are written with."""

from __future__ import annotations

import json
import os
import stat

import pytest

from agm.io.atomic import atomic_dir, atomic_path, save_torch, write_json, write_text


class Boom(RuntimeError):
    pass


@pytest.fixture
def umask():
    """set(mask) sets the process umask for the test; the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_path_writes_via_a_sibling_temp_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"  # parents are created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()  # nothing visible until the body succeeds
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_creates_nothing_when_the_body_raises(tmp_path):
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "out.txt"):
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    (target / "nested").mkdir()
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "fresh.txt").write_text("new")
        assert (target / "stale.txt").exists()  # the old folder stays until the body succeeds
    assert sorted(p.name for p in target.iterdir()) == ["fresh.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_the_old_folder_when_the_body_raises(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(target) as tmp:
            (tmp / "partial.txt").write_text("x")
            raise Boom
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_replaces_a_file_at_the_path(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file")
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("a")
    assert target.is_dir() and (target / "a.txt").read_text() == "a"


def test_written_files_get_the_usual_modes_under_umask_022(tmp_path, umask):
    umask(0o022)
    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "b.txt").write_text("y")
    assert _mode(tmp_path / "a.txt") == 0o644  # not mkstemp's 0o600
    assert _mode(tmp_path / "d") == 0o755  # not mkdtemp's 0o700


def test_modes_follow_the_umask(tmp_path, umask):
    umask(0o077)
    write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d"):
        pass
    assert _mode(tmp_path / "a.txt") == 0o600
    assert _mode(tmp_path / "d") == 0o700


def test_write_json_round_trip(tmp_path):
    obj = {"b": 1, "a": [1.5, "x"], "nested": {"k": None}}
    write_json(tmp_path / "m.json", obj)
    text = (tmp_path / "m.json").read_text()
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["b", "a", "nested"]  # insertion order
    assert json.loads(text) == obj


def test_save_torch_bytes_depend_on_the_object_alone(tmp_path):
    import torch

    state = {"w": torch.arange(12.0).reshape(3, 4), "step": 7}
    save_torch(state, tmp_path / "a" / "model.pt")
    save_torch(state, tmp_path / "b" / "other_name.pt")
    a, b = (tmp_path / "a" / "model.pt").read_bytes(), (tmp_path / "b" / "other_name.pt").read_bytes()
    assert a == b  # not named after the random temporary file, nor after the destination
    loaded = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 7
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["model.pt"]
