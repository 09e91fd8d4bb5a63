"""Where a training run keeps its resume state: one folder per run identity, outside DVC's outputs.

A train stage's DVC outputs are ordinary cached outputs (the model, its EMA snapshots, the logs), so DVC's
run-cache saves and restores them. What a killed run needs to continue (``latest.pt`` and the EMA
snapshots so far, agm.training.loop) lives in a state folder ``<root>/<name>-<key>/``, ``key`` a hash of the run's
whole identity (its configuration, the content hashes of its data and code, the versions of the libraries
that compute it), so a run resumes only its own state and another identity's folder is never touched.

- The root is ``$AGM_STATE_DIR``, else ``.agm_state/`` in the workspace. A queued experiment runs in a
  temporary copy under ``<repo>/.dvc/tmp/exps/``, and uses ``<repo>/.agm_state/``: queue workers share it.
- :func:`locked` holds an exclusive lock (``flock``) on ``<folder>.lock`` while a process trains that
  identity: a second process waits, then finds the first one's state (finished: nothing left to train).
- Folders stay until :func:`prune` removes them, by age or to fit a size; it skips locked ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agm.io.provenance import package_versions

STATE_ENV = "AGM_STATE_DIR"
"""The environment variable naming the state root."""
DEFAULT_DIRNAME = ".agm_state"
"""The state root's name in the workspace when ``$AGM_STATE_DIR`` is unset."""
KEY_LENGTH = 16
"""Hex digits of the identity hash in a folder's name (64 bits)."""
COMPUTING_LIBRARIES = ("torch", "numpy")
"""The installed packages whose versions belong to a training run's identity."""
_QUEUE_TMP = (".dvc", "tmp", "exps")


def state_root(workspace: str | os.PathLike[str] | None = None,
               environ: Mapping[str, str] | None = None) -> Path:
    """``$AGM_STATE_DIR``, else ``<workspace>/.agm_state`` (``workspace``: the current directory).

    A workspace under ``<repo>/.dvc/tmp/exps/`` (a queued or ``--temp`` experiment's copy) maps to
    ``<repo>/.agm_state``, so experiments share state with each other and with the workspace.
    """
    environ = os.environ if environ is None else environ
    if environ.get(STATE_ENV):
        return Path(environ[STATE_ENV]).expanduser().absolute()
    parts = Path(os.getcwd() if workspace is None else workspace).absolute().parts
    for i in range(len(parts) - len(_QUEUE_TMP)):
        if parts[i:i + len(_QUEUE_TMP)] == _QUEUE_TMP:
            return Path(*parts[:i]) / DEFAULT_DIRNAME
    return Path(*parts) / DEFAULT_DIRNAME


def identity_key(identity: Mapping[str, Any]) -> str:
    """sha256 of the identity's canonical JSON (sorted keys), its first :data:`KEY_LENGTH` hex digits."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def state_dir(root: str | os.PathLike[str], name: str, identity: Mapping[str, Any]) -> Path:
    """The state folder of the run ``identity``: ``<root>/<name>-<key>`` (``name`` only helps a reader)."""
    return Path(root) / f"{name}-{identity_key(identity)}"


def library_versions(device_type: str) -> dict[str, str]:
    """The installed versions of :data:`COMPUTING_LIBRARIES`, and on CUDA those of CUDA and cuDNN."""
    versions = package_versions(COMPUTING_LIBRARIES)
    if device_type == "cuda":
        import torch

        versions.update(cuda=str(torch.version.cuda), cudnn=str(torch.backends.cudnn.version()))
    return versions


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")


def _acquire(path: Path, blocking: bool) -> int | None:
    """An fd holding an exclusive flock on ``path``; None if it is held elsewhere and ``blocking`` is False."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # prune removed the file while this process waited: lock the new one


@contextlib.contextmanager
def locked(folder: str | os.PathLike[str], on_wait: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of a state folder (``<folder>.lock``), waiting for it if another process holds it.

    ``on_wait(lock_path)`` is called once before waiting. Creates the folder once it holds the lock (a
    :func:`prune` running meanwhile cannot remove it between the two); yields it.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = _lock_path(folder)
    fd = _acquire(path, blocking=False)
    if fd is None:
        if on_wait is not None:
            on_wait(path)
        fd = _acquire(path, blocking=True)
    try:
        folder.mkdir(exist_ok=True)
        yield folder
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StateFolder:
    """One run's state folder: its path, its size in bytes and when a file in it was last written."""

    path: Path
    size: int
    last_write: float


def state_folders(root: str | os.PathLike[str]) -> list[StateFolder]:
    """Every state folder under ``root`` (``<name>-<key>``), least recently written first."""
    root = Path(root)
    found = []
    for folder in root.iterdir() if root.is_dir() else ():
        key = folder.name.rpartition("-")[2]
        if not folder.is_dir() or len(key) != KEY_LENGTH or any(c not in "0123456789abcdef" for c in key):
            continue
        files = [p for p in folder.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        last = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in files)])
        found.append(StateFolder(folder, size, last))
    return sorted(found, key=lambda s: s.last_write)


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` removed, and the folders it would have removed but found locked (in use)."""

    removed: list[StateFolder]
    busy: list[StateFolder]


def prune(root: str | os.PathLike[str], *, older_than_s: float | None = None, max_bytes: int | None = None,
          dry_run: bool = False, now: float | None = None) -> Pruned:
    """Remove state folders last written more than ``older_than_s`` seconds ago, then the least recently
    written ones until the rest fit in ``max_bytes``. A locked folder (a run in progress) is never removed.

    Removing a folder only costs time: a run whose state is gone trains again from step 0 if DVC has not
    kept its outputs.
    """
    if older_than_s is None and max_bytes is None:
        raise ValueError("prune needs an age (older_than_s) or a size (max_bytes)")
    now = time.time() if now is None else now
    folders = state_folders(root)
    chosen = [f for f in folders if older_than_s is not None and now - f.last_write > older_than_s]
    if max_bytes is not None:
        total = sum(f.size for f in folders if f not in chosen)
        for f in folders:  # least recently written first
            if total <= max_bytes:
                break
            if f not in chosen:
                chosen.append(f)
                total -= f.size
    removed, busy = [], []
    for f in chosen:
        fd = _acquire(_lock_path(f.path), blocking=False)
        if fd is None:
            busy.append(f)
            continue
        try:
            if not dry_run:
                shutil.rmtree(f.path)
                _lock_path(f.path).unlink()
            removed.append(f)
        finally:
            os.close(fd)
    return Pruned(removed, busy)
