"""The λ sweep: AGM's metrics against λ, gathered from `dvc exp show --json`.

Each experiment (and the workspace and the commits `dvc exp show` lists) contributes one row per seed
of AGM's metrics files ``metrics/agm/s<seed>.json``, keyed by its ``lambda`` param. Rows that repeat
the same (λ, seed) with the same numbers (the workspace, the commit an experiment came from, and the
experiment itself) are counted once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from agm.metrics.spaces import DISTANCE_NAMES
from agm.report.tables import mean_ci

METRIC_FILE = re.compile(r"^metrics/agm/s(\d+)\.json$")


def _entries(exp_show: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every revision record of `dvc exp show --json`: workspace, commits and their experiments."""
    for entry in exp_show:
        yield entry
        for group in entry.get("experiments") or []:
            yield from _entries(group.get("revs") or [])


def sweep_rows(exp_show: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per distinct (λ, seed, metrics) found: columns lambda, seed, rev, name, distance name,
    precision, recall."""
    rows = []
    for entry in _entries(exp_show):
        data = entry.get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        if "lambda" not in params:
            continue
        for path, content in (data.get("metrics") or {}).items():
            match = METRIC_FILE.match(path)
            values = (content or {}).get("data") or {}
            space = values.get("feature_space")
            if not match or space not in DISTANCE_NAMES:
                continue
            dist = DISTANCE_NAMES[space]
            rows.append({"lambda": float(params["lambda"]), "seed": int(match.group(1)), dist: values[dist],
                         "precision": values["precision"], "recall": values["recall"],
                         "rev": entry.get("rev"), "name": entry.get("name") or ""})
    if not rows:
        raise ValueError("no experiment with a `lambda` param and metrics/agm/s<seed>.json was found")
    df = pd.DataFrame(rows)
    metric_cols = [c for c in df.columns if c not in ("rev", "name")]
    return df.drop_duplicates(subset=metric_cols).sort_values(["lambda", "seed"]).reset_index(drop=True)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per λ: mean and 95% half-width over seeds of every metric, and the number of seeds."""
    metrics = [c for c in rows.columns if c not in ("lambda", "seed", "rev", "name")]
    out = []
    for lam, group in rows.groupby("lambda", sort=True):
        row: dict[str, Any] = {"lambda": lam, "seeds": len(group)}
        for m in metrics:
            ci = mean_ci(group[m].tolist())
            row[m], row[f"{m}_ci"] = ci.mean, ci.half_width
        out.append(row)
    return pd.DataFrame(out)


def plot_sweep(summary: pd.DataFrame, path: str | Path) -> None:
    """Each metric against λ (error bars: 95% intervals over seeds where there are several)."""
    metrics = [c for c in summary.columns if c not in ("lambda", "seeds") and not c.endswith("_ci")]
    fig = Figure(figsize=(4 * len(metrics), 3.5), layout="constrained")
    for ax, m in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        ax.errorbar(summary["lambda"], summary[m], yerr=summary[f"{m}_ci"], marker="o", capsize=3)
        ax.set_xlabel("λ (0 = the baseline)")
        ax.set_ylabel(m)
        ax.grid(True, alpha=0.3)
    fig.savefig(path, dpi=120)
