"""The finished stage outputs the report shows, read from files: metrics, logs, metric-vs-steps CSVs, the figure
stages' folders and the cost metrics. Nothing here imports torch: the report can be rebuilt on a machine that
holds only the committed outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from agm.config.feature_spaces import DISTANCE_NAMES
from agm.report import analysis, stats

T = TypeVar("T")


def read_live_curves(live_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The dvclive scalars of one training run as one frame indexed by step (columns: metric names)."""
    folder = Path(live_dir) / "plots" / "metrics" / "train"
    frames = [pd.read_csv(f, sep="\t").set_index("step")[[f.stem]] for f in sorted(folder.glob("*.tsv"))]
    if not frames:
        raise FileNotFoundError(f"no dvclive curves under {folder}")
    return pd.concat(frames, axis=1).reset_index()


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def load_optional(load: Callable[[Path], T], path: str | os.PathLike[str], missing: list[str]) -> T | None:
    """``load(path)``, or None when a file it reads does not exist; then its name is appended to ``missing``.

    A seed whose output is missing (a stage run by hand, a deleted file) shows as n/a in the report rather
    than stopping it; the stage prints what was missing.
    """
    try:
        return load(Path(path))
    except FileNotFoundError as exc:
        missing.append(str(exc.filename or path))
        return None


STEPS_MODELS = ("baseline", "agm")
"""The models with a metric-vs-steps curve (dvc.yaml's steps stage)."""


def read_curves(live: Path, models: Sequence[str], seeds: Sequence[int],
                missing: list[str]) -> dict[str, list[pd.DataFrame | None]]:
    """Every model's dvclive curves per seed, from ``live/<model>/s<seed>``; a missing one is None, named in
    ``missing``."""
    return {m: [load_optional(read_live_curves, Path(live) / m / f"s{s}", missing) for s in seeds] for m in models}


def read_steps(steps: Path, seeds: Sequence[int], missing: list[str]) -> dict[str, list[pd.DataFrame | None]]:
    """The baseline's and AGM's metric-vs-steps frames per seed, from ``steps/<model>/s<seed>.csv``; a missing one
    is None, named in ``missing``."""
    return {m: [load_optional(pd.read_csv, Path(steps) / m / f"s{s}.csv", missing) for s in seeds]
            for m in STEPS_MODELS}


@dataclass(frozen=True)
class RunOutputs:
    """The finished stage outputs the report shows, loaded.

    Attributes:
        models: model names, "baseline" and "agm" first, then any controls.
        seeds: the training seeds; every per-seed list below follows this order, with None for a seed whose
            output is missing (shown as n/a).
        curves: model → dvclive curves per seed (step, drift_loss or action_loss, potential_loss, w_*).
        metrics: model → per-seed metrics dicts (the evaluate stage's JSON).
        features_metrics: the features stage's JSON (feature space, classifier accuracy, real vs real).
        steps: model → per-seed metric-vs-steps frames (step, distance column, precision, recall).
        figures: figure name → its PNG, as the figure stages drew them (agm.report.run_figures, agm.report.saliency).
        figure_manifest: the figures stage's manifest (figure → what it was drawn from, or why it was not).
        saliency: the saliency stage's manifest (model, potential, times), or None when missing.
        time_bins: the number of t-bins of AGM's weight table (first seed), or None.
        cost: the cost stage's metrics (GFLOP per image per model), or None when missing.
    """

    models: Sequence[str]
    seeds: Sequence[int]
    curves: dict[str, list[pd.DataFrame | None]]
    metrics: dict[str, list[dict[str, Any] | None]]
    features_metrics: dict[str, Any]
    steps: dict[str, list[pd.DataFrame | None]]
    figures: dict[str, Path] = field(default_factory=dict)
    figure_manifest: dict[str, Any] = field(default_factory=dict)
    saliency: dict[str, Any] | None = None
    time_bins: int | None = None
    cost: dict[str, Any] | None = None

    @property
    def space(self) -> str:
        """The feature space of the metrics ("digits" or "inception")."""
        return self.features_metrics["feature_space"]

    @property
    def dist(self) -> str:
        """The distance's key in the metrics (e.g. "fd_digits")."""
        return DISTANCE_NAMES[self.space]

    @property
    def dist_title(self) -> str:
        """The distance's column header: FID only when it is one."""
        return "FID (Inception-v3)" if self.space == "inception" else "FD (digit-classifier features)"

    @property
    def controls(self) -> list[str]:
        """The control models, in order."""
        return [m for m in self.models if m not in ("baseline", "agm")]

    @property
    def seed_text(self) -> str:
        return f"seed {self.seeds[0]}" if len(self.seeds) == 1 else f"seeds {', '.join(map(str, self.seeds))}"

    @property
    def interval(self) -> str:
        """How the tables' cells are aggregated over seeds, in words."""
        if len(self.seeds) > 1:
            return "mean ± 95% Student-t interval over " + self.seed_text
        return f"one {self.seed_text}, so no interval (list more in params `seeds`)"

    def reproduced(self) -> dict[str, dict[str, list[float | None]]]:
        """model → distance / precision / recall → per-seed values (None: missing), every model."""
        return analysis.reproduced_metrics(self.metrics, self.models, self.dist)

    def first_curves(self, models: Sequence[str]) -> tuple[dict[str, pd.DataFrame], str]:
        """The first seed's curves of ``models`` that have them, and the sentence naming the others (or "")."""
        first = {m: self.curves[m][0] for m in models}
        missing = [m for m, curve in first.items() if curve is None]
        note = f" {', '.join(missing)}: {stats.na(f'seed {self.seeds[0]} curves missing')}." if missing else ""
        return {m: curve for m, curve in first.items() if curve is not None}, note


def drawn_figures(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> dict[str, Path]:
    """A figure stage's manifest (figure -> {"png": name, ...} or {"skipped": why}) -> figure -> its PNG's path."""
    return {name: Path(folder) / entry["png"] for name, entry in manifest.items() if "png" in entry}
