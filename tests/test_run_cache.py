"""End-to-end: DVC reuses finished training wherever it can, and resume state only ever serves its own run (slow).

In a temporary copy that is its own git repository, with tests/tiny_params.yaml: `dvc repro`, then `dvc push
--run-cache` to a local remote; a second clone that runs `dvc pull --run-cache` and `dvc repro` trains nothing, nor
does its `dvc exp run` of an experiment the first pushed;
a queued experiment (`dvc exp run --queue -S lambda=0.2`, `dvc queue start`) trains only the AGM branch;
`-S lambda=0.3` then `-S lambda=0.1` in the workspace trains nothing the second time; a changed
requirements.txt re-runs the train stages, which find their finished state and train no step. Outside DVC:
a run half-trained in one process resumes in two, and an edited image of a `data.source: folder` re-runs
prepare where a touched one does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import copy_pipeline, ran_stages, sh
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny_params.yaml"
TRAIN = {"train_baseline@0", "train_agm@0"}
pytestmark = pytest.mark.slow




def restored_stages(out: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run", out))


def state_folders(repo: Path) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[0] for p in (repo / ".agm_state").iterdir() if p.is_dir())


def new_repo(dst: Path, params: dict) -> Path:
    copy_pipeline(dst)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], dst)
    sh(["dvc", "config", "core.analytics", "false"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "tiny pipeline"], dst)
    return dst


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reproduced repository whose outputs and run-cache are in a local remote."""
    repo = new_repo(tmp_path_factory.mktemp("origin"), yaml.safe_load(TINY.read_text()))
    remote = tmp_path_factory.mktemp("remote")
    sh(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    out = sh(["dvc", "repro"], repo)
    assert TRAIN <= ran_stages(out), out
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "repro"], repo)
    sh(["dvc", "push", "--run-cache"], repo)
    assert state_folders(repo) == ["agm-s0", "baseline-s0"]
    return repo


def test_a_fresh_clone_pulls_the_run_cache_and_trains_nothing(origin: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    sh(["dvc", "pull", "--run-cache"], clone)
    out = sh(["dvc", "repro"], clone)
    assert ran_stages(out) == {"source"}, out  # it hashes the data source; everything else is up to date
    assert not (clone / ".agm_state").exists()  # no train stage started
    status = json.loads(sh(["dvc", "status", "--json"], clone).splitlines()[-1])
    assert status == {"source": ["always changed"]}, status
    model = "runs/agm/s0/model.pt"
    assert (clone / model).read_bytes() == (origin / model).read_bytes()


def test_a_collaborators_run_of_a_pushed_experiment_trains_nothing(origin: Path, tmp_path: Path) -> None:
    """A runs an experiment and `dvc push --run-cache`; B clones A's commit, pulls the run-cache and runs the same
    experiment with `--pull`: the train, sample and steps stages are restored from the remote, logs included
    (cached outputs under logs/), and only cheap stages run (publish copies the logs to the git-tracked live/ and
    steps/). An uncached output of a train stage would never reach the remote, and B would train again."""
    out = sh(["dvc", "exp", "run", "-S", "lambda=0.25"], origin)
    assert ran_stages(out) & TRAIN == {"train_agm@0"}, out
    sh(["dvc", "push", "--run-cache"], origin)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    sh(["dvc", "pull", "--run-cache"], clone)
    out = sh(["dvc", "exp", "run", "--pull", "-S", "lambda=0.25"], clone)  # --pull: fetch what a restore misses
    expensive = {s for s in ran_stages(out) if s.split("@")[0] in ("train_agm", "train_baseline", "sample", "steps")}
    assert not expensive, out
    assert {"train_agm@0", "sample@agm-0", "steps@agm-0"} <= restored_stages(out), out
    assert not (clone / ".agm_state").exists()  # no train stage started
    for path in ("live/agm/s0/metrics.json", "steps/agm/s0.csv"):  # A's training log and curve, restored
        assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    metrics = [json.loads((repo / "metrics/agm/s0.json").read_text()) for repo in (clone, origin)]
    assert [{k: v for k, v in m.items() if k != "seconds"} for m in metrics] == [  # evaluate re-ran: its time
        {k: v for k, v in metrics[1].items() if k != "seconds"}] * 2


def test_a_queued_experiment_trains_only_the_agm_branch(origin: Path) -> None:
    before = state_folders(origin)
    sh(["dvc", "exp", "run", "--queue", "-n", "lam02", "-S", "lambda=0.2"], origin)
    sh(["dvc", "queue", "start"], origin)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = sh(["dvc", "queue", "status"], origin)
        if "lam02" in status and not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(5)
    assert re.search(r"lam02.*Success", status), status
    log = sh(["dvc", "queue", "logs", "lam02"], origin)
    assert ran_stages(log) & TRAIN == {"train_agm@0"}, log
    assert "train_baseline@0" not in ran_stages(log)
    # the worker ran in a temporary copy under .dvc/tmp/exps/ and kept its state in the workspace's .agm_state
    after = state_folders(origin)
    assert after.count("agm-s0") == before.count("agm-s0") + 1 and after.count("baseline-s0") == 1, after


def test_going_back_to_a_trained_lambda_trains_nothing(origin: Path) -> None:
    out = sh(["dvc", "exp", "run", "-S", "lambda=0.3"], origin)
    assert ran_stages(out) & TRAIN == {"train_agm@0"}, out
    out = sh(["dvc", "exp", "run", "-S", "lambda=0.1"], origin)
    assert not ran_stages(out) & TRAIN and "train_agm@0" in restored_stages(out), out
    live = json.loads((origin / "live" / "agm" / "s0" / "metrics.json").read_text())
    assert live["resumed_from_step"] == 0  # the first run's log, restored: not a re-run
    # only the cheap stages that draw and assemble re-run: DVC never run-caches a stage with an uncached output
    # that is no metric or plot (the figure folders and the report are such outputs, committed to git)
    assert ran_stages(out) <= {"check", "source", "figures", "saliency", "report"}, out


def test_a_changed_requirements_file_reruns_training_which_trains_no_step(origin: Path) -> None:
    """requirements.txt is a dep of the train stages; what the identity holds is the installed versions, here
    unchanged, so each stage finds its finished state and writes the same model (nothing downstream re-runs)."""
    model = (origin / "runs" / "agm" / "s0" / "model.pt").read_bytes()
    with open(origin / "requirements.txt", "a") as fh:
        fh.write("# a comment: the file changed, the installed libraries did not\n")
    out = sh(["dvc", "repro"], origin)
    assert TRAIN <= ran_stages(out), out
    assert not {s for s in ran_stages(out) if s.split("@")[0] in ("sample", "evaluate", "steps")}, out
    for model_name in ("baseline", "agm"):
        live = json.loads((origin / "live" / model_name / "s0" / "metrics.json").read_text())
        assert live["resumed_from_step"] == live["steps"] == 6, model_name
    assert (origin / "runs" / "agm" / "s0" / "model.pt").read_bytes() == model


# --- outside DVC: the process count, and an image folder as the source -------------------------------------

def test_a_run_half_trained_in_one_process_resumes_in_two(tmp_path: Path) -> None:
    params = yaml.safe_load(TINY.read_text())
    params["train"]["steps"] = 60
    params["model"].update(channel_mult=[1], num_res_blocks=1, attn_resolutions=[])
    params["execution"].update(device="cpu", checkpoint_every=10, log_every=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AGM_STATE_DIR": str(tmp_path / "state")}
    files = {"--params": "params.yaml", "--data": "train.npz", "--out": "run", "--live": "live"}
    args = [sys.executable, "-m", "stages.train", "--variant", "agm", "--seed", "0",
            *[x for flag, name in files.items() for x in (flag, str(tmp_path / name))]]
    subprocess.run([sys.executable, "-m", "stages.prepare", "--params", str(tmp_path / "params.yaml"), "--train",
                    str(tmp_path / "train.npz"), "--heldout", str(tmp_path / "heldout.npz")],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "state").glob("*/latest.pt")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before a checkpoint was seen"
    params["execution"]["nproc"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "--nproc_per_node=2" in res.stdout
    live = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert 0 < live["resumed_from_step"] < 60 and live["steps"] == 60
    assert len(list((tmp_path / "state").iterdir())) == 2  # one state folder and its lock file


def test_an_edited_image_reruns_prepare_and_a_touched_one_does_not(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(images / f"{i:03d}.png")
    params = yaml.safe_load(TINY.read_text())
    params["data"].update(source="folder", path=str(images))
    repo = new_repo(tmp_path / "repo", params)
    assert {"source", "prepare"} <= ran_stages(sh(["dvc", "repro", "prepare"], repo))
    os.utime(images / "007.png", (1, 1))
    assert ran_stages(sh(["dvc", "repro", "prepare"], repo)) == {"source"}  # the same content
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(images / "007.png")
    assert ran_stages(sh(["dvc", "repro", "prepare"], repo)) == {"source", "prepare"}
    shutil.rmtree(images)
    with pytest.raises(AssertionError, match="data folder .* does not exist"):
        sh(["dvc", "repro", "prepare"], repo)
