"""Stage-level reliability: a stage killed mid-write leaves no output behind (atomic outputs); a training
stage keeps its resume state in a folder of its identity: it never resumes (nor deletes) the state of other
code, configuration or library versions, and resumes its own under another execution cadence."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_sample_stage_killed_mid_write_leaves_no_output(tmp_path: Path) -> None:
    from agm.math.nets import DriftUNet
    from agm.models.files import save_model

    unet = dict(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                attn_resolutions=(), time_embed_dim=16, head_channels=8, dropout=0.0, groups=4)
    save_model(tmp_path / "model.pt", ema=DriftUNet(**unet).state_dict(), unet=unet, potential=None,
               potential_kwargs=None, step=0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # many small batches at a high NFE: the stage is mid-write for several seconds
    params["sample"].update(num_samples=4000, batch_size=20, nfe=400)
    params["execution"]["device"] = "cpu"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "samples"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.sample", "--params", str(tmp_path / "params.yaml"), "--seed", "0",
         "--model", str(tmp_path / "model.pt"), "--out", str(out)],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".samples.*.tmp/samples.npy")):
        time.sleep(0.2)  # wait until the stage has started writing into its temporary folder
    assert list(tmp_path.glob(".samples.*.tmp/samples.npy")), "the stage never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing a later stage could trust


# --- a training stage's resume state belongs to one identity: its config, data, code and libraries ---------

def _copy_code(dst: Path) -> Path:
    for name in ("agm", "stages"):
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


SMALLEST_UNET = dict(channel_mult=[1], num_res_blocks=1, attn_resolutions=[])
"""One scale, one block, attention only at the bottleneck: a step in a few tens of milliseconds."""


def _params(work: Path, steps: int, model: dict | None = None, **execution) -> Path:
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["train"]["steps"] = steps
    params["model"].update(model or {})
    params["execution"].update(device="cpu", **execution)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return work / "params.yaml"


def _env(code: Path, work: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(code), "AGM_STATE_DIR": str(work / "state")}


def _stage_args(work: Path) -> list[str]:
    return [sys.executable, "-m", "stages.train", "--params", str(work / "params.yaml"), "--variant", "agm",
            "--seed", "0", "--data", str(work / "train.npz"), "--out", str(work / "run"), "--live", str(work / "live")]


def _train_stage(code: Path, work: Path, steps: int, model: dict | None = None, **execution) -> str:
    _params(work, steps, model, **execution)
    env = _env(code, work)
    if not (work / "train.npz").exists():
        subprocess.run([sys.executable, "-m", "stages.prepare", "--params", str(work / "params.yaml"),
                        "--train", str(work / "train.npz"), "--heldout", str(work / "heldout.npz")],
                       cwd=code, env=env, check=True, capture_output=True)
    res = subprocess.run(_stage_args(work), cwd=code, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout + res.stderr


def _model_bytes(work: Path) -> bytes:
    return (work / "run" / "model.pt").read_bytes()


def _resumed_from(work: Path) -> int:
    return json.loads((work / "live" / "metrics.json").read_text())["resumed_from_step"]


def _states(work: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (work / "state").glob("agm-s0-*/latest.pt")}


def test_train_stage_trains_afresh_after_a_code_change_and_keeps_the_old_state(tmp_path: Path) -> None:
    code, work = _copy_code(tmp_path / "code"), tmp_path / "work"
    work.mkdir()
    _train_stage(code, work, steps=4)
    first, state = _model_bytes(work), _states(work)
    assert len(state) == 1
    _train_stage(code, work, steps=4)  # the same identity: its finished state, the same model, no step trained
    assert _resumed_from(work) == 4 and _model_bytes(work) == first and _states(work) == state
    losses = code / "agm" / "math" / "losses.py"
    text = losses.read_text()
    edited = text.replace("return (f_out.float() - target.float()).square().flatten(1).mean(1)",
                          "return (f_out.float() - target.float()).abs().flatten(1).mean(1)")
    assert edited != text
    losses.write_text(edited)  # a changed drift loss: another identity, which trains from step 0
    _train_stage(code, work, steps=4)
    assert _resumed_from(work) == 0 and _model_bytes(work) != first
    after = _states(work)
    assert len(after) == 2 and all(after[k] == v for k, v in state.items())  # the old state is untouched


def test_train_stage_with_fewer_steps_does_not_return_the_longer_model(tmp_path: Path) -> None:
    code, work = ROOT, tmp_path
    _train_stage(code, work, steps=6)
    longer = _model_bytes(work)
    _train_stage(code, work, steps=3)
    assert _resumed_from(work) == 0 and _model_bytes(work) != longer and len(_states(work)) == 2
    assert torch.load(work / "run" / "model.pt", weights_only=False)["step"] == 3


def test_a_half_trained_run_resumes_under_another_cadence_and_ends_bitwise_equal(tmp_path: Path) -> None:
    """execution.checkpoint_every and log_every are not part of the identity: a run killed after a checkpoint
    continues from it under new values and ends with the uninterrupted run's model."""
    steps, (whole, killed) = 60, (tmp_path / "whole", tmp_path / "killed")
    for work in (whole, killed):
        work.mkdir()
    _train_stage(ROOT, whole, steps, SMALLEST_UNET, checkpoint_every=10, log_every=5)
    shutil.copy2(whole / "train.npz", killed / "train.npz")
    _params(killed, steps, SMALLEST_UNET, checkpoint_every=10, log_every=5)
    proc = subprocess.Popen(_stage_args(killed), cwd=ROOT, env=_env(ROOT, killed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not _states(killed) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before a checkpoint was seen"
    partial = torch.load(next((killed / "state").glob("agm-s0-*/latest.pt")), weights_only=False)["step"]
    assert 0 < partial < steps
    _train_stage(ROOT, killed, steps, SMALLEST_UNET, checkpoint_every=25, log_every=15)
    assert _resumed_from(killed) == partial and len(_states(killed)) == 1
    assert _model_bytes(killed) == _model_bytes(whole)


def test_a_library_version_bump_trains_again(tmp_path: Path, monkeypatch) -> None:
    """The versions of the libraries that compute are in the identity: another torch never resumes this one's state."""
    import stages.train
    from stages import run

    _train_stage(ROOT, tmp_path, steps=4)
    real = stages.train.library_versions
    monkeypatch.setattr(stages.train, "library_versions", lambda device_type: {**real(device_type), "torch": "99.0"})
    monkeypatch.setenv("AGM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(sys, "argv", ["train", *_stage_args(tmp_path)[3:]])
    torch.set_num_threads(1)
    run(stages.train.main)
    assert _resumed_from(tmp_path) == 0 and len(_states(tmp_path)) == 2
    bumped = [json.loads(p.read_text())["versions"]["torch"] for p in (tmp_path / "state").glob("*/identity.json")]
    assert sorted(bumped) == sorted([real("cpu")["torch"], "99.0"])


def test_check_stage_stops_on_any_section_and_writes_the_same_marker_for_every_valid_file(tmp_path: Path) -> None:
    """`stages.check` validates every section, cross-field rules included; the marker it writes for valid params
    does not depend on their values, so a valid change triggers nothing through it."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def check(name: str, edit) -> tuple[subprocess.CompletedProcess, Path]:
        params = json.loads(json.dumps(raw))
        edit(params)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
        out = tmp_path / f"{name}.json"
        res = subprocess.run([sys.executable, "-m", "stages.check", "--params", str(tmp_path / f"{name}.yaml"),
                              "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
        return res, out

    for name, edit, key in [
        ("eval", lambda p: p["eval"].update(k=0), "eval.k"),
        ("snapshots", lambda p: p["train"].update(snapshot_every=p["train"]["steps"] + 1), "train.snapshot_every"),
        ("nproc", lambda p: p["execution"].update(nproc=3), "execution.nproc"),
        ("num_samples", lambda p: p["sample"].update(num_samples=3), "sample.num_samples"),
        ("snapshot_samples", lambda p: p["eval"].update(snapshot_samples=0), "eval.snapshot_samples"),
        ("shuffled", lambda p: p.update({"lambda": 0.0, "controls": ["shuffled"]}), "shuffled control needs lambda"),
        ("no_detach", lambda p: p.update({"lambda": 0.0, "controls": ["no_detach"]}), "no_detach control needs"),
        ("amp", lambda p: p["sample"].update(amp="fp16"), "sample.amp"),
    ]:
        res, out = check(name, edit)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0], res.stderr
        assert not out.exists()
    valid = [check(name, edit) for name, edit in [
        ("as-is", lambda p: None), ("lambda", lambda p: p.update({"lambda": 1.0})),
        ("steps", lambda p: p["train"].update(steps=2000)), ("k", lambda p: p["sample"].update(num_samples=4)),
        ("time_only", lambda p: p.update({"lambda": 0.0, "controls": ["time_only"]}))]]
    assert all(res.returncode == 0 for res, _ in valid), [res.stderr for res, _ in valid]
    assert len({out.read_bytes() for _, out in valid}) == 1


def test_cost_stage_writes_the_flops_it_counts(tmp_path: Path) -> None:
    """`stages.cost` counts where the networks are built and writes the counts the report reads."""
    from agm.config.params import load_params
    from agm.report.flops import flops_per_image

    tiny = ROOT / "tests" / "tiny_params.yaml"
    res = subprocess.run([sys.executable, "-m", "stages.cost", "--params", str(tiny), "--out",
                          str(tmp_path / "c.json")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    cost = json.loads((tmp_path / "c.json").read_text())
    params = load_params(tiny)
    expected = {m: flops_per_image(params, m, params.seeds[0]) for m in ("baseline", "agm")}
    assert cost["flops_per_image"] == expected
    assert cost["agm_over_baseline"] == round(expected["agm"] / expected["baseline"], 6) > 1


def test_saliency_stage_draws_nothing_for_a_model_without_a_potential(tmp_path: Path) -> None:
    from agm.models.files import save_model

    save_model(tmp_path / "model.pt", ema={}, unet={}, potential=None, potential_kwargs=None, step=1)
    res = subprocess.run([sys.executable, "-m", "stages.saliency", "--params", str(ROOT / "tests" / "tiny_params.yaml"),
                          "--model", str(tmp_path / "model.pt"), "--real", "unused.npz", "--out",
                          str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig5_saliency.json"]
    assert json.loads((tmp_path / "out" / "fig5_saliency.json").read_text())["potential"] is False
