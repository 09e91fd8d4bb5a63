"""Tests for agm/training/run_state.py: where resume state lives, its key, its lock, and pruning it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agm.training.run_state import (
    DEFAULT_DIRNAME,
    KEY_LENGTH,
    STATE_ENV,
    _acquire,
    identity_key,
    library_versions,
    locked,
    prune,
    state_dir,
    state_folders,
    state_root,
)

IDENTITY = {"variant": "agm", "seed": 0, "train": {"steps": 6, "lr": 2e-4}, "versions": {"torch": "2.14.1"}}


# --- the root ---------------------------------------------------------------------------------------------

def test_the_root_is_the_environment_variable_else_the_workspace_folder(tmp_path):
    assert state_root(tmp_path / "ws", environ={}) == tmp_path / "ws" / DEFAULT_DIRNAME
    assert state_root(tmp_path / "ws", environ={STATE_ENV: str(tmp_path / "shared")}) == tmp_path / "shared"
    assert state_root(tmp_path / "ws", environ={STATE_ENV: ""}) == tmp_path / "ws" / DEFAULT_DIRNAME


def test_a_queued_experiments_temporary_workspace_shares_its_repository_root(tmp_path):
    """`dvc exp run --queue` runs each experiment in <repo>/.dvc/tmp/exps/<tmp>: workers share <repo>/.agm_state."""
    worker = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    assert state_root(worker, environ={}) == tmp_path / "repo" / DEFAULT_DIRNAME
    assert state_root(tmp_path / "repo" / ".dvc" / "tmp", environ={}) == tmp_path / "repo" / ".dvc" / "tmp" / \
        DEFAULT_DIRNAME


# --- the key ---------------------------------------------------------------------------------------------

def test_the_key_ignores_key_order_and_changes_with_any_value():
    key = identity_key(IDENTITY)
    assert len(key) == KEY_LENGTH and int(key, 16) >= 0
    assert identity_key(dict(reversed(IDENTITY.items()))) == key
    for changed in ({**IDENTITY, "seed": 1}, {**IDENTITY, "train": {"steps": 6, "lr": 2.0001e-4}},
                    {**IDENTITY, "versions": {"torch": "2.14.2"}}, {**IDENTITY, "code": "abc"}):
        assert identity_key(changed) != key


def test_the_state_folder_is_named_for_a_reader_and_keyed_by_the_identity(tmp_path):
    folder = state_dir(tmp_path, "agm-s0", IDENTITY)
    assert folder == tmp_path / f"agm-s0-{identity_key(IDENTITY)}"
    assert state_dir(tmp_path, "agm-s0", {**IDENTITY, "versions": {"torch": "2.15.0"}}) != folder


def test_library_versions_are_the_installed_ones():
    from importlib.metadata import version

    assert library_versions("cpu") == {"torch": version("torch"), "numpy": version("numpy")}


# --- the lock --------------------------------------------------------------------------------------------

def test_a_locked_folder_cannot_be_locked_again_until_released(tmp_path):
    folder = tmp_path / "agm-s0-0123456789abcdef"
    with locked(folder) as held:
        assert held == folder and folder.is_dir()
        assert _acquire(folder.with_name(folder.name + ".lock"), blocking=False) is None  # another open file
    fd = _acquire(folder.with_name(folder.name + ".lock"), blocking=False)
    assert fd is not None
    os.close(fd)


def test_a_second_process_waits_for_the_lock_and_says_so(tmp_path):
    folder, events = tmp_path / "agm-s0-0123456789abcdef", []
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with locked(folder):
            taken.set()
            release.wait(10)
            events.append("released")

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(10)
    threading.Timer(0.3, release.set).start()
    with locked(folder, on_wait=lambda lock: events.append(f"waiting for {lock.name}")):
        events.append("acquired")
    thread.join(10)
    assert events == [f"waiting for {folder.name}.lock", "released", "acquired"]


def test_a_prune_while_a_process_waits_cannot_take_the_folder_it_will_train_in(tmp_path):
    """Another process holds the lock; one that waits for it has not created the folder yet, so a prune that
    runs meanwhile (and removes an unlocked folder) has nothing of it to remove; once the lock is its own, the
    folder exists. Before the fix the waiting process created the folder first, and a prune could delete it."""
    folder = tmp_path / "state" / "agm-s0-0123456789abcdef"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from agm.training.run_state import locked\n"
        f"with locked({str(folder)!r}):\n    print('held', flush=True); sys.stdin.readline()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    shutil.rmtree(folder)  # the holder's own folder, gone: only the lock file is left
    seen = []

    def waiter() -> None:
        with locked(folder, on_wait=lambda lock: seen.append(folder.exists())):
            seen.append(folder.is_dir())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    assert seen == [False] and not folder.exists()  # waiting, and nothing created that a prune could take
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(10)
    thread.join(10)
    assert seen == [False, True]


# --- pruning ---------------------------------------------------------------------------------------------

def _folder(root: Path, name: str, size: int, age_days: float, now: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "latest.pt").write_bytes(b"x" * size)
    for p in (folder / "latest.pt", folder):
        os.utime(p, (now - age_days * 86400,) * 2)
    return folder


def test_prune_by_age_and_by_size_keeps_other_files_and_locked_folders(tmp_path):
    now = time.time()
    old = _folder(tmp_path, "agm-s0-" + "a" * 16, 100, 40, now)
    older = _folder(tmp_path, "baseline-s0-" + "b" * 16, 300, 50, now)
    new = _folder(tmp_path, "agm-s1-" + "c" * 16, 200, 1, now)
    other = tmp_path / "notes"
    other.mkdir()
    assert [f.path for f in state_folders(tmp_path)] == [older, old, new]  # least recently written first

    dry = prune(tmp_path, older_than_s=30 * 86400, dry_run=True, now=now)
    assert [f.path for f in dry.removed] == [older, old] and older.exists() and old.exists()

    with locked(old):
        result = prune(tmp_path, older_than_s=30 * 86400, now=now)
    assert [f.path for f in result.removed] == [older] and [f.path for f in result.busy] == [old]
    assert not older.exists() and not older.with_name(older.name + ".lock").exists()
    assert old.exists() and new.exists() and other.exists()

    result = prune(tmp_path, max_bytes=250, now=now)  # least recently written first, until the rest fit
    assert [f.path for f in result.removed] == [old] and new.exists()
    assert [f.path for f in state_folders(tmp_path)] == [new]


def test_prune_needs_an_age_or_a_size(tmp_path):
    with pytest.raises(ValueError, match="age"):
        prune(tmp_path)


def test_the_state_command_lists_and_prunes(tmp_path, monkeypatch, capsys):
    import sys

    from agm.config.errors import run_main as run
    from tools.state import main

    now = time.time()
    old = _folder(tmp_path, "agm-s0-" + "a" * 16, 100, 40, now)
    new = _folder(tmp_path, "agm-s1-" + "c" * 16, 200, 1, now)
    monkeypatch.setenv(STATE_ENV, str(tmp_path))
    for argv in (["list"], ["prune", "--older-than-days", "30"]):
        monkeypatch.setattr(sys, "argv", ["state", *argv])
        run(main)
    out = capsys.readouterr().out
    assert f"2 state folders, 0.00 GiB, in {tmp_path}" in out and "removed 1 state folders" in out
    assert not old.exists() and new.exists()
    monkeypatch.setattr(sys, "argv", ["state", "prune"])
    with pytest.raises(SystemExit) as info:
        run(main)
    assert info.value.code == 2 and capsys.readouterr().err == "error: prune needs --older-than-days or --max-gb " \
        "(or both)\n"
