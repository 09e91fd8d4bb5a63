"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("agm", "stages", ".dvc", "dvc.yaml", ".gitignore", ".dvcignore")
"""What a `dvc repro` in a temporary repository needs of this one (params.yaml is the test's own)."""

B = 8
HYPER = dict(sigma_max=0.1, margin=1.0, mu=0.01, clamp=(0.1, 10.0), lr_f=1e-3, lr_v=1e-3,
             betas=(0.9, 0.999), weight_decay=0.0, grad_clip=1.0, ema_decay=0.9)
"""Trainer settings of the tiny step and loop tests."""


def inputs(seed: int = 0, b: int = B):
    """One step's (x1, x0, eps, t, z) for 1x8x8 images, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (b, 1, 8, 8)
    x1 = torch.rand(shape, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(shape, generator=gen) for _ in range(3))
    t = torch.rand(b, generator=gen)
    return x1, x0, eps, t, z


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def params_equal(m1: nn.Module, m2: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in history]


def agm_trainer(f, V=None, *, lam: float = 0.0, clamp=(0.1, 10.0), detach: bool = True, time_table=None, **kw):
    """An AGMTrainer with the weighting the arguments describe (as agm.variants builds them from params):
    a time table → TimeTableWeights; a V → PotentialWeights(V, lam, clamp, detach); neither → UnitWeights."""
    from agm.agm_trainer import AGMTrainer
    from agm.trainer_base import AMP_DTYPES
    from agm.weightings import PotentialWeights, TimeTableWeights, UnitWeights

    if time_table is not None:
        weighting = TimeTableWeights(time_table)
    elif V is not None:
        weighting = PotentialWeights(V, lam=lam, clamp=clamp, detach=detach,
                                     amp_dtype=AMP_DTYPES[kw.get("amp", "none")])
    else:
        weighting = UnitWeights()
    return AGMTrainer(f, V, weighting, **kw)


def stage_error(stage: str, tmp_path, features, eval_updates: dict, monkeypatch, capsys) -> str:
    """Run the evaluate or steps stage on ``features`` with tiny params (``eval`` updated) and inputs that do
    not exist; check it stops with exit code 2, one ``error:`` line and no output; return that line."""
    import sys
    from pathlib import Path

    import pytest
    import yaml

    from stages import run

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "tests" / "tiny_params.yaml").read_text())
    params["eval"].update(eval_updates)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    missing = str(tmp_path / "missing")
    extra = ["--samples", missing] if stage == "evaluate" else ["--seed", "0", "--run", missing]
    argv = [stage, "--params", str(tmp_path / "params.yaml"), "--features", str(features),
            "--out", str(tmp_path / "out"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    module = __import__(f"stages.{stage}", fromlist=["main"])
    with pytest.raises(SystemExit) as info:
        run(module.main)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()
    return err


def copy_pipeline(dst: Path) -> None:
    """Copy the code and DVC files of this repository into ``dst`` (caches and __pycache__ left out)."""
    for name in PIPELINE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp"))
        else:
            shutil.copy2(src, dst / name)
