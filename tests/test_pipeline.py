"""End-to-end: the DVC pipeline on tiny params, in a temporary copy that is its own git repo.

Checks what a user relies on: `dvc repro` with two seeds produces every metric, plot and figure, and
the report shows mean ± 95% intervals equal to those of the metrics files; a second `dvc repro` runs
nothing but the `source` check; switching the controls on runs only the new stages and adds them to the
report; `dvc exp run -S lambda=0.0` re-runs only the AGM branch and `dvc metrics diff` shows the changed AGM
numbers; `execution.nproc: 2` runs train, sample and steps as two gloo processes with the one-process
results, and two torchrun "nodes" on 127.0.0.1 train a train stage as one process does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import assert_same_training, copy_pipeline, ran_stages, sh
from PIL import Image

from agm.report.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "tiny_params.yaml"
SEEDS = (0, 1)
CONTROLS = ("no_detach", "time_only", "action_matching")
pytestmark = pytest.mark.slow




def read_metrics(repo: Path, model: str) -> list[dict]:
    return [json.loads((repo / "metrics" / model / f"s{s}.json").read_text()) for s in SEEDS]


def table_row(md: str, model: str) -> list[str]:
    row = next(line for line in md.splitlines() if line.startswith(f"| {model} "))
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("pipeline")
    copy_pipeline(dst)
    params = yaml.safe_load(TINY.read_text())
    params["seeds"] = list(SEEDS)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "tiny pipeline"], dst)
    sh(["dvc", "repro"], dst)
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-qm", "repro"], dst)
    return dst


def test_repro_writes_every_output(repo: Path) -> None:
    for model in ("baseline", "agm"):
        for seed, m in zip(SEEDS, read_metrics(repo, model), strict=True):
            assert m["feature_space"] == "digits" and "fid" not in m  # honest name: not an Inception FID
            assert m["fd_digits"] > 0 and 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
            live = json.loads((repo / "live" / model / f"s{seed}" / "metrics.json").read_text())
            assert live["steps"] == 6 and live["train"]["drift_loss"] > 0
            assert (repo / "steps" / model / f"s{seed}.csv").read_text().startswith("step,fd_digits")
        # two seeds are two different runs
        assert read_metrics(repo, model)[0]["fd_digits"] != read_metrics(repo, model)[1]["fd_digits"]
    live = json.loads((repo / "live" / "agm" / "s0" / "metrics.json").read_text())
    assert live["train"]["potential_loss"] > 0
    table = json.loads((repo / "runs" / "agm" / "s0" / "time_weights.json").read_text())
    assert sum(table["counts"]) == 6 * 16  # every sample of every step, binned by t
    figs = ("fig3_samples", "fig4_training_curves", "fig5_saliency", "metric_vs_steps", "weight_stats",
            "weight_diagnostics", "weight_by_time")
    for fig in figs:
        with Image.open(repo / "reports" / "figures" / f"{fig}.png") as im:
            im.verify()
            assert im.size[0] > 200 and im.size[1] > 100
    html = (repo / "reports" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(figs) and '<img src="figures' not in html


def test_report_shows_mean_and_interval_over_seeds(repo: Path) -> None:
    md = (repo / "reports" / "report.md").read_text()
    for model in ("baseline", "agm"):
        ms = read_metrics(repo, model)
        cells = table_row(md, model)
        for col, key, digits in ((1, "fd_digits", 2), (2, "precision", 3), (3, "recall", 3)):
            ci = mean_ci([m[key] for m in ms])
            assert cells[col] == ci.format(digits), (model, key, cells)
        assert cells[4] == "2"  # seeds


def test_second_repro_runs_nothing(repo: Path) -> None:
    out = sh(["dvc", "repro"], repo)
    assert ran_stages(out) == {"source"}, out  # the one stage that always runs: it hashes the data source


def _repro_stopped_in_check(repo: Path, edit, message: str) -> None:
    """``dvc repro`` with ``edit`` applied to params.yaml (and train.steps changed, which would re-run every train
    stage if the check let it through) fails in `check` alone, with ``message``, before any stage does work."""
    params_file = repo / "params.yaml"
    good = params_file.read_text()
    params = yaml.safe_load(good)
    params["train"]["steps"] += 1
    edit(params)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    state = sorted(p.name for p in (repo / ".agm_state").iterdir())
    try:
        res = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        params_file.write_text(good)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert message in out, out
    assert ran_stages(out) == {"check"}, out
    assert sorted(p.name for p in (repo / ".agm_state").iterdir()) == state  # no train stage started
    # the valid file again: the check writes its marker back (DVC removed it before the failed run), nothing else
    assert ran_stages(sh(["dvc", "repro"], repo)) <= {"check", "source"}


def test_a_bad_eval_value_stops_the_repro_before_a_changed_train_value_trains(repo: Path) -> None:
    """The `check` stage reads the whole params file first: a bad eval.k fails `dvc repro` with one line naming
    it, although the changed train.steps would have re-run every train stage before `evaluate` read eval.k."""
    _repro_stopped_in_check(repo, lambda p: p["eval"].update(k=0), "error: eval.k must be >= 1, got 0")


@pytest.mark.parametrize("rule,edit,message", [
    ("controls need V", lambda p: p.update({"lambda": 0.0, "controls": ["shuffled", "no_detach"]}),
     "error: the shuffled control needs lambda > 0"),
    ("samples for k", lambda p: p["sample"].update(num_samples=p["eval"]["k"]),
     "error: sample.num_samples 3 must be more than eval.k 3"),
    ("snapshot samples for k", lambda p: p["eval"].update(snapshot_samples=0),
     "error: eval.snapshot_samples 0 must be more than eval.k 3"),
])
def test_every_cross_field_rule_stops_the_repro_in_check(repo: Path, rule: str, edit, message: str) -> None:
    """Each rule a later stage would enforce (after AGM trained, or in evaluate / steps) fails `dvc repro` in
    `check`, with one line naming it, before any stage does work."""
    _repro_stopped_in_check(repo, edit, message)


def test_bytecode_and_tool_caches_leave_dvc_status_clean(repo: Path) -> None:
    """A new user's shell writes __pycache__ into agm/ and stages/, folder deps of most stages (agm/math/nets,
    agm/math/metrics, ...): .dvcignore keeps bytecode and tool caches out of every dep. PYTHONDONTWRITEBYTECODE,
    which this suite's shell may set, is unset for the commands that write them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    importer = ("import importlib, pkgutil, agm, stages\n"
                "for pkg in (agm, stages):\n"
                "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
                "        importlib.import_module(m.name)\n")
    for cmd in (["-m", "compileall", "-q", "agm", "stages"], ["-c", importer]):
        res = subprocess.run([sys.executable, *cmd], cwd=repo, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert list((repo / "agm" / "math" / "nets" / "__pycache__").glob("*.pyc"))  # the bytecode is there
    caches = [repo / "agm" / name for name in (".pytest_cache", ".ruff_cache", ".mypy_cache")]
    for cache in caches:
        cache.mkdir()
        (cache / "state").write_text("tool state")
    try:
        res = subprocess.run(["dvc", "status", "--json"], cwd=repo, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        # the source stage hashes its data at every run (always_changed); nothing else may be listed
        changed = {stage: why for stage, why in json.loads(res.stdout).items() if why != ["always changed"]}
        assert changed == {}, res.stdout
    finally:
        for cache in caches:
            shutil.rmtree(cache)


def test_controls_run_only_new_stages_and_join_the_report(repo: Path) -> None:
    out = sh(["dvc", "exp", "run", "-S", f"controls=[{','.join(CONTROLS)}]"], repo)
    ran = ran_stages(out)
    new = {f"{kind}@{c}-{s}" for kind in ("train_control", "sample_control", "evaluate_control", "publish_control")
           for c in CONTROLS for s in SEEDS}
    assert ran == new | {"figures", "report", "source", "check"}, out  # figures: the controls' curves and grids
    md = (repo / "reports" / "report.md").read_text()
    for control in CONTROLS:
        cells = table_row(md, control)
        assert cells[1] == mean_ci([m["fd_digits"] for m in read_metrics(repo, control)]).format(2)
    am = json.loads((repo / "live" / "action_matching" / "s0" / "metrics.json").read_text())
    assert "action_loss" in am["train"] and "drift_loss" not in am["train"]
    assert "No stop-gradient" in md and ("No collapse within" in md or "Collapsed at step" in md)
    assert "time-only − AGM fd_digits" in md


def test_ablation_reruns_only_the_agm_branch(repo: Path) -> None:
    out = sh(["dvc", "exp", "run", "-S", "lambda=0.0", "-S", "controls=[]"], repo)
    ran = ran_stages(out)
    agm_branch = {f"{kind}@{s}" for kind in ("train_agm",) for s in SEEDS} | {
        f"{kind}@agm-{s}" for kind in ("sample", "evaluate", "steps", "publish") for s in SEEDS} | {
        "figures", "saliency", "cost", "report", "source", "check"}  # cost: AGM's FLOPs read lambda
    # downstream AGM stages may be skipped when their inputs hash the same (tiny runs); the baseline never runs
    assert {"train_agm@0", "sample@agm-0"} <= ran <= agm_branch, out
    changed = json.loads(sh(["dvc", "metrics", "diff", "--json"], repo))
    assert "live/agm/s0/metrics.json" in changed
    assert not any(path.startswith("live/baseline") for path in changed)
    # the λ = 0 "AGM" run is the baseline: same seed, same config, so the same training losses
    for s in SEEDS:
        base = json.loads((repo / "live" / "baseline" / f"s{s}" / "metrics.json").read_text())
        agm = json.loads((repo / "live" / "agm" / f"s{s}" / "metrics.json").read_text())
        assert agm["train"]["drift_loss"] == pytest.approx(base["train"]["drift_loss"], rel=1e-6)


def test_sweep_gathers_lambda_from_experiments(repo: Path) -> None:
    """After the λ = 0 experiment, `tools.sweep` finds λ = 0.1 (the commit) and λ = 0 (the experiment)."""
    sh(["python", "-m", "tools.sweep", "--out", "sweep"], repo)
    rows = pd.read_csv(repo / "sweep" / "runs.csv")
    agm = rows[rows["model"] == "agm"]
    assert sorted(set(agm["lambda"])) == [0.0, 0.1]
    for lam in (0.0, 0.1):
        got = agm[agm["lambda"] == lam].sort_values("seed")
        assert got["seed"].tolist() == list(SEEDS)
    committed = agm[agm["lambda"] == 0.1].sort_values("seed")["fd_digits"].tolist()
    head = [json.loads(sh(["git", "show", f"HEAD:metrics/agm/s{s}.json"], repo))["fd_digits"] for s in SEEDS]
    assert committed == pytest.approx(head)
    assert agm[agm["lambda"] == 0.1]["ess"].notna().all()  # the weight diagnostics of the AGM runs
    summary = pd.read_csv(repo / "sweep" / "summary.csv")
    assert summary[summary["model"] == "agm"]["seeds"].tolist() == [2, 2]
    with Image.open(repo / "sweep" / "lambda.png") as im:
        im.verify()


# ---- several processes: execution.nproc inside dvc repro, and two "nodes" on the loopback ------------------

def test_sample_stage_on_two_processes_writes_the_single_process_images(repo: Path, tmp_path: Path) -> None:
    """Every batch has its own seed, so sharing the batches between two gloo processes changes no pixel."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["execution"]["nproc"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = sh(["python", "-m", "stages.sample", "--params", str(tmp_path / "params.yaml"), "--seed", "1",
              "--model", "runs/baseline/s1/model.pt", "--out", str(tmp_path / "samples")], repo)
    assert "launch: torchrun --nnodes=1 --nproc_per_node=2 --rdzv-backend=c10d --rdzv-endpoint=localhost:0" in out
    for name in ("samples.npy", "grid.npy"):
        assert (np.load(tmp_path / "samples" / name) == np.load(repo / "samples" / "baseline" / "s1" / name)).all()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["grid.npy", "grid.png", "samples.npy"]


def _trainer_state(state: Path, model: str, seed: int, ema: dict | None = None) -> dict:
    """The resume state (``latest.pt``'s trainer: raw and EMA weights) of ``model``'s seed under ``state``; where
    that root holds several runs of it (other params), the one whose EMA is ``ema``."""
    for path in sorted(state.glob(f"{model}-s{seed}-*/latest.pt")):
        trainer = torch.load(path, weights_only=False)["trainer"]
        if ema is None or all(torch.equal(trainer["ema"][k], v) for k, v in ema.items()):
            return trainer
    raise AssertionError(f"no {model} seed {seed} state under {state}")


def _train_stage(repo: Path, out: Path, params: dict, seed: int = 0) -> dict:
    """One process of the train stage (AGM) on ``params``, in its own state folder; its trainer state."""
    out.mkdir(parents=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["python", "-m", "stages.train", "--params", str(out / "params.yaml"), "--variant", "agm", "--seed",
        str(seed), "--data", "data/prepared/train.npz", "--out", str(out / "run"), "--live", str(out / "live")],
       repo, AGM_STATE_DIR=str(out / "state"))
    return _trainer_state(out / "state", "agm", seed)


def test_the_same_training_check_refuses_another_seed_and_one_step_fewer(repo: Path, tmp_path: Path) -> None:
    """helpers.assert_same_training, which the two-process tests below rely on, tells a run of another seed and
    a run one step shorter from the same run."""
    params = yaml.safe_load(TINY.read_text())
    one = _train_stage(repo, tmp_path / "one", params)
    assert_same_training(one, one, params=params)
    with pytest.raises(AssertionError):
        assert_same_training(_train_stage(repo, tmp_path / "seed1", params, seed=1), one, params=params)
    fewer = {**params, "train": {**params["train"], "steps": params["train"]["steps"] - 1}}
    with pytest.raises(AssertionError, match="median weight"):  # every weight is within reach: the EMA barely moves
        assert_same_training(_train_stage(repo, tmp_path / "fewer", fewer), one, params=params)


def test_repro_with_two_processes_matches_one_process(repo: Path, tmp_path: Path) -> None:
    """`dvc exp run -f -S execution.nproc=2` with an empty state folder: train, sample and steps run as two gloo
    processes inside the pipeline and give the one-process models up to float reduction order
    (helpers.assert_same_training: the samples and metrics of two float32 models that close have no bound of
    their own, so they are not compared). (Without -f nothing runs: execution.nproc is a param of no stage.
    Without the empty state folder the train stages would find their finished one-process state: the process
    count is not part of a run's identity.)"""
    ema_one = {m: torch.load(repo / "runs" / m / "s0" / "model.pt", weights_only=False)["ema"]
               for m in ("baseline", "agm")}
    one = {m: _trainer_state(repo / ".agm_state", m, 0, ema_one[m]) for m in ema_one}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert ran_stages(sh(["dvc", "exp", "run", "-S", "execution.nproc=2"], repo)) == {"check", "source"}
    out = sh(["dvc", "exp", "run", "-f", "-S", "execution.nproc=2"], repo, AGM_STATE_DIR=str(tmp_path / "state"))
    assert {"train_baseline@0", "train_agm@1", "sample@agm-0", "steps@baseline-1"} <= ran_stages(out), out
    assert out.count("--nproc_per_node=2") >= 4 * len(SEEDS)  # train and sample, both models, every seed
    for m in ("baseline", "agm"):
        live = json.loads((repo / "live" / m / "s0" / "metrics.json").read_text())
        assert live["steps"] == 6
        two = torch.load(repo / "runs" / m / "s0" / "model.pt", weights_only=False)
        assert two["step"] == 6
        assert_same_training(_trainer_state(tmp_path / "state", m, 0, two["ema"]), one[m], params=params)
        assert all(0 < a["fd_digits"] and 0 <= a["precision"] <= 1 for a in read_metrics(repo, m))


def test_two_nodes_on_the_loopback_train_the_one_process_model(repo: Path, tmp_path: Path) -> None:
    """Multi-node: two torchrun agents ("nodes", one gloo process each) meet by c10d rendezvous on 127.0.0.1
    and train a train stage; the model equals one process's up to float reduction order
    (helpers.assert_same_training)."""
    def stage_args(name: str) -> list[str]:
        return ["-m", "stages.train", "--params", "params.yaml", "--variant", "agm", "--seed", "0",
                "--data", "data/prepared/train.npz", "--out", str(tmp_path / name / "run"),
                "--live", str(tmp_path / name / "live")]

    # each its own state folder: the process count is not in the identity, so they would share one
    sh(["python", *stage_args("one")], repo, AGM_STATE_DIR=str(tmp_path / "one" / "state"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1",
           "AGM_STATE_DIR": str(tmp_path / "two" / "state")}
    node = ["torchrun", "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=loopback", *stage_args("two")]
    nodes = [subprocess.Popen(node, cwd=repo, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n".join(logs)
    one, two = (torch.load(tmp_path / n / "run" / "model.pt", weights_only=False) for n in ("one", "two"))
    assert two["step"] == one["step"] == 6
    assert_same_training(*(_trainer_state(tmp_path / n / "state", "agm", 0) for n in ("two", "one")),
                         params=yaml.safe_load((repo / "params.yaml").read_text()))
    live = json.loads((tmp_path / "two" / "live" / "metrics.json").read_text())
    assert live["steps"] == 6  # rank 0 logged


@pytest.mark.parametrize(("edited", "stage"), [
    ("agm/report/page.py", "report"),  # the page's template
    ("agm/report/sections.py", "report"),  # its captions
    ("agm/report/saliency.py", "saliency"),  # Fig. 5's code
    ("agm/report/run_figures.py", "figures"),
])
def test_a_page_edit_reruns_the_report_alone_and_a_figure_edit_its_figure_stage(repo: Path, edited: str,
                                                                               stage: str) -> None:
    """The report only assembles files: editing its page or captions re-runs `report` alone (no model is loaded,
    no figure drawn, no FLOP counted again); editing a figure's code re-runs that figure's stage, and the report
    only if the figure's files changed (an edit that draws the same bytes leaves it cached)."""
    path = repo / edited
    original = path.read_text()
    sh(["dvc", "repro"], repo)  # whatever an earlier test left changed
    try:
        path.write_text(original + "\n# an edit\n")
        ran = ran_stages(sh(["dvc", "repro"], repo)) - {"source"}
        assert stage in ran and ran <= {stage, "report"}, ran
    finally:
        path.write_text(original)
        sh(["dvc", "repro"], repo)
