"""The λ sweep: every model's metrics against λ, gathered from `dvc exp show --json`.

Each revision `dvc exp show` lists (the workspace, its commits and their experiments) contributes one
row per metrics file ``metrics/<model>/s<seed>.json`` (any model: baseline, agm, the controls), keyed by
the revision's ``lambda`` param, with the importance-weight diagnostics of the same run read from its
dvclive summary ``live/<model>/s<seed>/metrics.json`` in the same revision.

- :func:`sweep_rows`: one row per distinct (model, λ, seed); see its docstring for the columns.
- :func:`summarize`: per (model, λ), mean and 95% Student-t interval over seeds of every metric, and
  every model's paired-by-seed difference from the baseline at the same λ.
- :func:`plot_sweep`: one panel per metric against λ (log axis), one line per model.

The baseline never reads λ, so every experiment of a sweep carries the same (cached) baseline runs: it
appears once under every λ, which is what pairs it with each model at that λ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from agm.metrics.spaces import DISTANCE_NAMES
from agm.report.tables import mean_ci

METRIC_FILE = re.compile(r"^metrics/([^/]+)/s(\d+)\.json$")
LIVE_FILE = re.compile(r"^live/([^/]+)/s(\d+)/metrics\.json$")
BASELINE = "baseline"
WEIGHT_METRICS = {"w_ratio": "w_ratio", "ess": "w_ess"}
"""Row column -> key under ``train`` in the dvclive summary (its last logged value)."""
QUALITY = ("precision", "recall")
KEYS = ("model", "lambda", "seed")
EXTRA = ("rev", "name")


def _entries(exp_show: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every revision record of `dvc exp show --json`: workspace, commits and their experiments."""
    for entry in exp_show:
        yield entry
        for group in entry.get("experiments") or []:
            yield from _entries(group.get("revs") or [])


def _data(content: Any) -> dict[str, Any]:
    """The parsed file of a `dvc exp show` metrics/params record ({} for an error or a missing file)."""
    return ((content or {}).get("data") or {}) if isinstance(content, dict) else {}


def _float(value: Any) -> float:
    """A metric's value as a float; NaN for an absent one or a JSON null (a NaN some writers emit as null)."""
    return math.nan if value is None else float(value)


def _live_value(summary: dict[str, Any], key: str) -> float:
    """``train.<key>`` of a dvclive summary (nested, or flat ``train/<key>``); NaN when absent."""
    train = summary.get("train")
    return _float(train.get(key) if isinstance(train, dict) else summary.get(f"train/{key}"))


def _order(model: str) -> tuple[int, str]:
    """Sort key: the baseline first, then AGM, then the controls by name."""
    return ({BASELINE: 0, "agm": 1}.get(model, 2), model)


def _distances(columns: Any) -> list[str]:
    return [c for c in DISTANCE_NAMES.values() if c in columns]


def sweep_rows(exp_show: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per distinct (model, λ, seed, metrics) in a parsed `dvc exp show --json`.

    Columns:
        model: the folder of ``metrics/<model>/s<seed>.json`` (baseline, agm, no_detach, ...).
        lambda: the revision's ``lambda`` param (the baseline's rows repeat under every λ).
        seed: the training seed ``<seed>`` of the file name.
        fd_digits or fid: the Fréchet distance, named for the file's ``feature_space``
            (:data:`agm.metrics.spaces.DISTANCE_NAMES`).
        precision, recall: improved precision and recall of the samples (NaN when the file has no value, or null).
        w_ratio: last logged max/min importance-weight ratio of a batch (``train.w_ratio`` of
            ``live/<model>/s<seed>/metrics.json``); NaN for unweighted models or a missing summary.
        ess: last logged effective sample size of the weights, as a fraction of the batch
            (``train.w_ess``); NaN likewise.
        rev, name: the revision and experiment name the row was first found in.

    Rows equal in every column but rev and name (the workspace, the commit an experiment came from and
    the experiment itself) are counted once. Revisions without a ``lambda`` param are skipped.
    """
    rows = []
    for entry in _entries(exp_show):
        data = entry.get("data") or {}
        params = _data((data.get("params") or {}).get("params.yaml"))
        if "lambda" not in params:
            continue
        files = {path: _data(content) for path, content in (data.get("metrics") or {}).items()}
        live = {m.groups(): values for path, values in files.items() if (m := LIVE_FILE.match(path))}
        for path, values in files.items():
            match = METRIC_FILE.match(path)
            space = values.get("feature_space")
            if not match or space not in DISTANCE_NAMES:
                continue
            dist = DISTANCE_NAMES[space]
            summary = live.get(match.groups(), {})
            rows.append({"model": match.group(1), "lambda": float(params["lambda"]), "seed": int(match.group(2)),
                         dist: _float(values.get(dist)), **{q: _float(values.get(q)) for q in QUALITY},
                         **{col: _live_value(summary, key) for col, key in WEIGHT_METRICS.items()},
                         "rev": entry.get("rev"), "name": entry.get("name") or ""})
    if not rows:
        raise ValueError("no revision with a `lambda` param and metrics/<model>/s<seed>.json was found")
    df = pd.DataFrame(rows)
    columns = [*KEYS, *_distances(df.columns), *QUALITY, *WEIGHT_METRICS, *EXTRA]
    df = df[columns].drop_duplicates(subset=[c for c in columns if c not in EXTRA])
    df = df.assign(_order=df["model"].map(_order)).sort_values(["_order", "lambda", "seed"], kind="stable")
    return df.drop(columns="_order").reset_index(drop=True)


def _check_unique(rows: pd.DataFrame) -> None:
    """Two different results for one (model, λ, seed) (e.g. a workspace run with other params than the
    experiments') cannot be told apart here: refuse rather than count them as two seeds."""
    dup = rows[rows.duplicated(subset=list(KEYS), keep=False)]
    if not dup.empty:
        where = "; ".join(f"{m} λ={lam:g} seed {s}: revs {', '.join(map(str, g['rev']))}"
                          for (m, lam, s), g in dup.groupby(list(KEYS), sort=True))
        raise ValueError(f"conflicting results for the same run ({where}); save `dvc exp show --json` "
                         "without the stale revisions and pass it as --exp-json")


def _ci(values: Any) -> tuple[float, float]:
    """Mean and 95% half-width of the non-NaN values (NaN, NaN when there are none)."""
    x = [float(v) for v in values if not math.isnan(float(v))]
    if not x:
        return math.nan, math.nan
    ci = mean_ci(x)
    return ci.mean, ci.half_width


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, λ): means and 95% Student-t intervals over seeds, and paired differences from the baseline.

    Columns:
        model, lambda: as in :func:`sweep_rows`.
        seeds: the number of seeds (rows) of the model at that λ.
        <metric>, <metric>_ci: for every metric of the rows (the distance, precision, recall, w_ratio,
            ess): mean over seeds and the half-width of its 95% Student-t interval (NaN with one seed;
            NaNs such as the baseline's w_ratio are left out, NaN when all are).
        paired_seeds: the seeds (space-separated) that have both this model's and the baseline's row at
            this λ; the differences use these only, so a seed without a baseline row is left out.
            Empty for the baseline itself.
        <m>_minus_baseline, <m>_minus_baseline_ci: for the distance, precision and recall, the mean over
            paired seeds of (model − baseline) at the same λ and seed, and its 95% Student-t half-width.
        <m>_minus_baseline_excludes_0: True when that interval excludes 0 (a difference beyond seed
            noise), False when it contains 0, empty when it is undefined (fewer than 2 paired seeds).
        The difference columns are empty for the baseline.
    """
    _check_unique(rows)
    metrics = [c for c in rows.columns if c not in (*KEYS, *EXTRA)]
    paired_metrics = [*_distances(rows.columns), *QUALITY]
    base = rows[rows["model"] == BASELINE].set_index(["lambda", "seed"])
    out = []
    for (_, model, lam), group in rows.assign(_order=rows["model"].map(_order)).groupby(
            ["_order", "model", "lambda"], sort=True):
        row: dict[str, Any] = {"model": model, "lambda": lam, "seeds": len(group)}
        for m in metrics:
            row[m], row[f"{m}_ci"] = _ci(group[m])
        if model != BASELINE:
            mine = group.set_index("seed")
            seeds = sorted(s for s in mine.index if (lam, s) in base.index)
            row["paired_seeds"] = " ".join(map(str, seeds))
            for m in paired_metrics:
                diffs = [mine.at[s, m] - base.at[(lam, s), m] for s in seeds]
                mean, half = _ci(diffs)
                row[f"{m}_minus_baseline"], row[f"{m}_minus_baseline_ci"] = mean, half
                row[f"{m}_minus_baseline_excludes_0"] = None if math.isnan(half) else bool(abs(mean) > half)
        out.append(row)
    columns = ["model", "lambda", "seeds", *(c for m in metrics for c in (m, f"{m}_ci")), "paired_seeds",
               *(f"{m}_minus_baseline{s}" for m in paired_metrics for s in ("", "_ci", "_excludes_0"))]
    return pd.DataFrame(out).reindex(columns=columns)


def _flat(df: pd.DataFrame, m: str) -> bool:
    """Whether metric ``m`` (mean and interval) is the same at every λ of ``df`` (one model's summary)."""
    values = df[[m, f"{m}_ci"]].to_numpy(dtype=np.float64)
    return bool(np.allclose(values, values[:1], rtol=1e-9, atol=0.0, equal_nan=True))


def plot_sweep(summary: pd.DataFrame, path: str | Path) -> None:
    """Each metric of :func:`summarize` against λ on a log axis, one line per model with 95% error bars.

    Panels: the distance(s), precision, recall, w_ratio and ess, where present. λ = 0 cannot sit on a
    log axis and is left out. A model that is the same at every λ (the baseline, which never reads λ)
    is drawn as a horizontal band, mean ± interval, instead of a line.
    """
    metrics = [m for m in (*_distances(summary.columns), *QUALITY, *WEIGHT_METRICS) if m in summary.columns]
    fig = Figure(figsize=(4 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    models = sorted(summary["model"].unique(), key=_order)
    colours = {model: f"C{i}" for i, model in enumerate(models)}
    skipped = bool((summary["lambda"] <= 0).any())
    for ax, m in zip(axes, metrics, strict=True):
        for model in models:
            df = summary[summary["model"] == model].sort_values("lambda")
            if df[m].isna().all():
                continue
            colour, label = colours[model], model
            if model == BASELINE and _flat(df, m):
                mean, half = float(df[m].iloc[0]), float(df[f"{m}_ci"].iloc[0])
                if not math.isnan(half):
                    ax.axhspan(mean - half, mean + half, color=colour, alpha=0.15, lw=0)
                ax.axhline(mean, color=colour, ls="--", label=f"{label} (any λ)")
                continue
            df = df[df["lambda"] > 0]
            ax.errorbar(df["lambda"], df[m], yerr=df[f"{m}_ci"].fillna(0.0), color=colour, marker="o",
                        capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("λ" + (" (λ = 0 not shown)" if skipped else ""))
        ax.set_ylabel(m)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.savefig(path, dpi=120)
