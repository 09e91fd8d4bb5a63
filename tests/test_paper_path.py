"""End-to-end: the paper profile's code path under `dvc repro`, offline, at tiny sizes (slow).

profiles/paper.yaml runs as params.yaml with only the run's sizes shrunk (steps, batch, intervals, sample
counts, NFE) and bf16 autocast off (on a CPU it costs ~50x); the networks, the 64x64 RGB data, the Inception
feature space and everything else are the paper's, and a test says so. Its inputs are made here: a few dozen
synthetic 64x64 images as a `datasets` save_to_disk folder (`data.source: hf`, the hub path minus the download)
and as PNG files (`data.source: folder`, which must prepare the same arrays), and a TorchScript stand-in under
clean-fid's Inception weights name, loaded through clean-fid's own InceptionV3W. Every Python process runs
with a sitecustomize that refuses and records non-loopback network access; the record must stay empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import copy_pipeline
from paper_inputs import (
    NETWORK_LOG_ENV,
    PAPER_TINY_SIZES,
    synthetic_images,
    write_hf_dataset,
    write_image_folder,
    write_network_guard,
    write_standin_inception,
)

from agm.config.params import load_params
from agm.io.data import ImageSet, load_image_set, split_holdout
from agm.io.provenance import file_sha256

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "profiles" / "paper.yaml"
pytestmark = pytest.mark.slow

N_IMAGES = 80
"""The paper's holdout_fraction 0.05 holds out round(80 * 0.05) = 4 images: the fewest k = 3 precision/recall
accepts (N > k) for the features stage's real-vs-real reference."""

SIZES = PAPER_TINY_SIZES
"""The only sizes shrunk from profiles/paper.yaml (tests/paper_inputs.py; scripts/gpu_check/ runs them too)."""

SETTINGS: dict[str, Any] = {"train.amp": "none", "execution.compile": False}
"""Not sizes: bf16 autocast on a CPU is ~50x slower than float32, and inductor's CPU build of the 45M U-Net takes
minutes per stage."""

INPUT_KEYS = ("data.name", "eval.inception_weights")
"""Set to the test's own inputs: the save_to_disk folder and the stand-in weights file."""

STAGES = {"prepare", "features", "train_baseline@0", "train_agm@0", "report"} | {
    f"{kind}@{model}-0" for kind in ("sample", "evaluate", "steps") for model in ("baseline", "agm")}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"section.key": value}; lists are values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def set_key(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        tree = tree[section]
    assert key in tree, f"{dotted} is not a key of {PAPER}"
    tree[key] = value


def offline_env(guard: Path, network_log: Path) -> dict[str, str]:
    """The environment of every command: offline HF and DVC, one torch thread, the network guard, a git user."""
    python_path = os.pathsep.join(p for p in (str(guard), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "DVC_NO_ANALYTICS": "1", "DVC_STUDIO_OFFLINE": "1", "PYTHONPATH": python_path,
            NETWORK_LOG_ENV: str(network_log),
            "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com"}


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = run(cmd, cwd, env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


@dataclass(frozen=True)
class PaperRun:
    """The fixture's temporary repository after one `dvc repro`, with the inputs and environment it ran with."""

    repo: Path
    paper: dict[str, Any]
    params: dict[str, Any]
    images: np.ndarray       # (N, 64, 64, 3) uint8, the dataset's rows in order
    image_folder: Path
    weights: Path
    env: dict[str, str]
    network_log: Path
    repro: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperRun]:
    inputs = tmp_path_factory.mktemp("paper_inputs")
    images = synthetic_images(N_IMAGES)
    hf_folder = write_hf_dataset(inputs / "hf_dataset", images)
    image_folder = write_image_folder(inputs / "images", images)
    weights = write_standin_inception(inputs / "weights")
    network_log = inputs / "network.log"
    env = offline_env(write_network_guard(inputs / "guard"), network_log)

    repo = tmp_path_factory.mktemp("paper_repo")
    copy_pipeline(repo)
    paper = yaml.safe_load(PAPER.read_text())
    params = yaml.safe_load(PAPER.read_text())
    for key, value in {**SIZES, **SETTINGS, "data.name": str(hf_folder),
                       "eval.inception_weights": str(weights)}.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    sh(["git", "init", "-q"], repo, env)
    sh(["dvc", "config", "core.analytics", "false"], repo, env)
    sh(["dvc", "config", "core.check_update", "false"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "paper profile, tiny sizes"], repo, env)
    repro = run(["dvc", "repro"], repo, env)
    yield PaperRun(repo, paper, params, images, image_folder, weights, env, network_log, repro)
    # ~4 GB of 45M-parameter resume state, snapshots and their DVC cache copies; pytest keeps the last 3 temp roots
    for heavy in (".agm_state", "runs", ".dvc/cache"):
        shutil.rmtree(repo / heavy, ignore_errors=True)


def test_network_guard_refuses_and_records(tmp_path: Path) -> None:
    """The recorder works: an outside connect and a name lookup are refused and logged; loopback is not."""
    log = tmp_path / "network.log"
    env = offline_env(write_network_guard(tmp_path / "guard"), log)
    probe = (
        "import socket\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=5).close()\n"
        "for attempt in (lambda: socket.create_connection(('93.184.216.34', 80), timeout=5),\n"
        "                lambda: socket.getaddrinfo('example.com', 443)):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('not refused')\n"
    )
    sh([sys.executable, "-c", probe], tmp_path, env)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["call"], r["address"]) for r in records] == [
        ("connect", "('93.184.216.34', 80)"), ("getaddrinfo", "'example.com'")]


def test_profile_is_the_paper_one_but_for_sizes(paper_run: PaperRun) -> None:
    paper, params = paper_run.paper, paper_run.params
    for section in ("model", "potential", "bridge"):
        assert params[section] == paper[section], section
    for key in ("source", "resolution", "channels", "holdout_fraction"):
        assert params["data"][key] == paper["data"][key], key
    assert (params["data"]["resolution"], params["data"]["channels"]) == (64, 3)
    assert params["eval"]["feature_space"] == "inception" and params["seeds"] == [0]
    flat, flat_paper = flatten(params), flatten(paper)
    assert flat.keys() == flat_paper.keys()
    changed = {key for key in flat if flat[key] != flat_paper[key]}
    assert changed == set(SIZES) | set(SETTINGS) | set(INPUT_KEYS)
    for key in SIZES:
        assert flat[key] <= flat_paper[key], key


def test_repro_runs_every_stage(paper_run: PaperRun) -> None:
    res = paper_run.repro
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"dvc repro failed:\n{res.stdout[-6000:]}\n{res.stderr[-3000:]}"
    assert STAGES <= set(re.findall(r"Running stage '([^']+)'", out)), out[-3000:]


def test_no_network_access_was_attempted(paper_run: PaperRun) -> None:
    log = paper_run.network_log
    assert not log.exists() or log.read_text() == "", log.read_text()
    # ... by processes the guard covered: dvc repro and every stage script
    guarded = [json.loads(line) for line in Path(f"{log}.processes").read_text().splitlines()]
    assert any(len(argv) >= 2 and Path(argv[-2]).name == "dvc" and argv[-1] == "repro" for argv in guarded), guarded
    scripts = {argv[argv.index("-m") + 1] for argv in guarded if "-m" in argv}
    assert {f"stages.{name}" for name in ("prepare", "features", "train", "sample", "evaluate", "steps",
                                          "report")} <= scripts, scripts


def test_unet_and_potential_have_the_paper_sizes(paper_run: PaperRun) -> None:
    from agm.math.nets import DriftUNet, count_parameters

    model = load_params(PAPER, ["model"]).model
    n_f = count_parameters(DriftUNet(**model.kwargs(3, 64)))
    assert 45.0e6 < n_f < 45.6e6  # the README's 45.3M
    for variant in ("baseline", "agm"):
        summary = json.loads((paper_run.repo / "live" / variant / "s0" / "metrics.json").read_text())
        assert summary["steps"] == SIZES["train.steps"]
        assert summary["params_f"] == n_f, variant
    agm = json.loads((paper_run.repo / "live" / "agm" / "s0" / "metrics.json").read_text())
    assert 0.70e6 < agm["params_V"] < 0.74e6  # the README's 0.72M


def test_features_come_from_the_weights_file(paper_run: PaperRun) -> None:
    repo = paper_run.repo
    features = json.loads((repo / "metrics" / "features.json").read_text())
    assert features["feature_space"] == "inception"
    assert features["inception_sha256"] == file_sha256(paper_run.weights)
    assert "fid" in features["real_vs_real"]
    n_held = round(N_IMAGES * paper_run.params["data"]["holdout_fraction"])
    for part, n in (("train", N_IMAGES - n_held), ("heldout", n_held)):
        with np.load(repo / "data" / "features" / f"{part}.npz") as z:
            assert z["features"].shape == (n, 2048), part


def test_metrics_are_named_fid(paper_run: PaperRun) -> None:
    repo = paper_run.repo
    for model in ("baseline", "agm"):
        m = json.loads((repo / "metrics" / model / "s0.json").read_text())
        assert m["feature_space"] == "inception"
        assert m["fid"] >= 0 and not any(key.startswith("fd") for key in m), m
        assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
        assert m["n_samples"] == SIZES["sample.num_samples"]
        steps = pd.read_csv(repo / "steps" / model / "s0.csv")
        assert list(steps.columns) == ["step", "fid", "precision", "recall"]
        assert steps["step"].tolist() == [1, 2]


def test_report_renders_fid(paper_run: PaperRun) -> None:
    reports = paper_run.repo / "reports"
    assert (reports / "report.md").is_file(), "no report; dvc repro:\n" + paper_run.repro.stdout[-3000:]
    md, html = (reports / "report.md").read_text(), (reports / "report.html").read_text()
    assert "FID" in md and "FID" in html
    # This run's sections name no digit-space metric; only the studies section, which quotes the committed
    # default-profile studies (and says so), may.
    studies = "Studies: the learning curve, the λ sweep, the power study and the paper's claims"
    md_run = re.sub(rf"## {re.escape(studies)}.*?(?=\n## )", "", md, flags=re.S)
    html_run = re.sub(rf"<section>\s*<h2>{re.escape(escape(studies))}</h2>.*?</section>", "", html, flags=re.S)
    assert md_run != md and html_run != html, "the studies section was not found"
    assert "default profile" in md and "fd_digits" not in md_run and "fd_digits" not in html_run


def test_hf_and_folder_sources_prepare_the_same_arrays(paper_run: PaperRun, tmp_path: Path) -> None:
    """The save_to_disk dataset and the PNG folder (sorted file names = row order) give the same split arrays,
    and those are the synthetic images themselves (64x64: no crop, no resize; PNG: lossless)."""
    params = yaml.safe_load((paper_run.repo / "params.yaml").read_text())
    params["data"].update(source="folder", name="", path=str(paper_run.image_folder))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    train, heldout = tmp_path / "train.npz", tmp_path / "heldout.npz"
    sh([sys.executable, "-m", "stages.prepare", "--params", str(tmp_path / "params.yaml"),
        "--train", str(train), "--heldout", str(heldout)], paper_run.repo, paper_run.env)
    log = paper_run.network_log
    assert not log.exists() or log.read_text() == "", log.read_text()

    images = np.ascontiguousarray(paper_run.images.transpose(0, 3, 1, 2))
    expected = split_holdout(ImageSet(images, np.full(N_IMAGES, -1, dtype=np.int64), "synthetic"),
                             params["data"]["holdout_fraction"], params["seed"])
    prepared = paper_run.repo / "data" / "prepared"
    for folder_file, hf_file, want in ((train, prepared / "train.npz", expected[0]),
                                       (heldout, prepared / "heldout.npz", expected[1])):
        from_folder, from_hf = load_image_set(folder_file), load_image_set(hf_file)
        np.testing.assert_array_equal(from_hf.images, want.images)
        np.testing.assert_array_equal(from_folder.images, from_hf.images)
        np.testing.assert_array_equal(from_folder.labels, from_hf.labels)
