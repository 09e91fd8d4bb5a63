"""dvc.yaml's stage commands run outside DVC, in a work folder that holds its own params.yaml.

The studies and the GPU check train and evaluate many (model, λ, seed) runs with exactly the commands `dvc repro`
runs, without a DVC repository per run: a work folder holds a params.yaml (the repository's, with overrides) and the
stages' outputs; the code comes from this repository on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def read_params(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def set_key(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """``tree[a][b] = value`` for ``dotted = "a.b"``; a key the params file does not have is an error."""
    *sections, key = dotted.split(".")
    for section in sections:
        tree = tree[section]
    if key not in tree:
        raise KeyError(f"{dotted} is not a key of the params file")
    tree[key] = value


def write_params(tree: dict[str, Any], path: Path, overrides: dict[str, Any]) -> Path:
    """Write ``tree`` with ``overrides`` (dotted keys) applied to ``path``; ``tree`` itself is left as it was."""
    tree = json.loads(json.dumps(tree))
    for key, value in overrides.items():
        set_key(tree, key, value)
    Path(path).write_text(yaml.safe_dump(tree, sort_keys=False))
    return Path(path)


def stage_commands(names: list[str]) -> dict[str, str]:
    """``name@model-seed`` (or ``name@seed``, or ``name``) -> the stage's command from dvc.yaml, with the matrix item
    substituted."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name in names:
        base, _, item = name.partition("@")
        cmd = " ".join(stages[base]["cmd"].split())
        if item:
            *model, seed = item.split("-")
            cmd = cmd.replace("${item.seed}", seed)
            if model:
                cmd = cmd.replace("${item.model}", model[0])
        if "${" in cmd:
            raise ValueError(f"stage {name}: unsubstituted variable in {cmd!r}")
        out[name] = cmd
    return out


def chain(model: str, seed: int) -> list[str]:
    """The stages that train, sample and evaluate one (model, seed), then publish its logs (``live/``): the
    baseline and AGM also get their metric-vs-steps curve (``steps`` and its copy ``steps/<model>/s<seed>.csv``);
    a control (shuffled, time_only, ...) has no steps stage."""
    if model in ("baseline", "agm"):
        return [f"train_{model}@{seed}", f"sample@{model}-{seed}", f"evaluate@{model}-{seed}",
                f"steps@{model}-{seed}", f"publish@{model}-{seed}"]
    return [f"train_control@{model}-{seed}", f"sample_control@{model}-{seed}", f"evaluate_control@{model}-{seed}",
            f"publish_control@{model}-{seed}"]


def stage_env(**extra: str) -> dict[str, str]:
    """The environment of a stage command run from a work folder: this repository importable, offline."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def read_metrics(workdir: Path, model: str, seed: int) -> dict[str, Any]:
    """The evaluate stage's metrics of (model, seed) in a work folder."""
    return json.loads((Path(workdir) / "metrics" / model / f"s{seed}.json").read_text())


def arm(name: str, default_lambda: float) -> tuple[str, float]:
    """``model@λ`` -> (model, λ); a bare model runs at ``default_lambda`` (the baseline ignores it)."""
    model, _, lam = name.partition("@")
    return model, float(lam) if lam else default_lambda
