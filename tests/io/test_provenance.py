"""Tests for agm/io/provenance.py's data hashes: a source folder is tracked by content, and only by content.

(The import closure and the code digest are tested in tests/test_stage_deps.py.)
"""

from __future__ import annotations

import os
import shutil
from importlib.metadata import version

import pytest

from agm.io.provenance import source_manifest, tree_digest


def _folder(root):
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"one")
    (root / "y.jpg").write_bytes(b"two")
    return root


def test_a_folder_digest_changes_with_content_names_and_files_not_with_place_or_time(tmp_path):
    folder = _folder(tmp_path / "images")
    digest = tree_digest(folder)
    assert digest["files"] == 2 and digest["bytes"] == 6
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    os.utime(moved / "y.jpg", (1, 1))
    assert tree_digest(moved) == digest
    for change in (lambda: (moved / "y.jpg").write_bytes(b"TWO"), lambda: (moved / "y.jpg").rename(moved / "z.jpg"),
                   lambda: (moved / "new.png").write_bytes(b"")):
        shutil.rmtree(moved)
        shutil.copytree(folder, moved)
        change()
        assert tree_digest(moved)["sha256"] != digest["sha256"]


def test_the_manifest_of_each_source(tmp_path):
    digits = source_manifest("digits", "", "")
    assert len(digits["sha256"]) == 64 and digits["versions"]["scikit-learn"] == version("scikit-learn")
    folder = source_manifest("folder", "", str(_folder(tmp_path / "images")))
    assert folder["sha256"] == tree_digest(tmp_path / "images")["sha256"] and "pillow" in folder["versions"]
    saved = _folder(tmp_path / "saved")
    (saved / "dataset_dict.json").write_text("{}")
    disk = source_manifest("hf", str(saved), "")
    assert disk["sha256"] == tree_digest(saved)["sha256"] and "datasets" in disk["versions"]
    hub = source_manifest("hf", "huggan/celeba-hq", "")
    assert hub["sha256"] is None and hub["name"] == "huggan/celeba-hq"  # a hub dataset: by name only


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        source_manifest("folder", "", str(tmp_path / "nope"))
