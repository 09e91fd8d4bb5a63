"""The λ sweep: every model's metrics against λ, gathered from `dvc exp show --json`.

Each revision `dvc exp show` lists (the workspace, its commits and their experiments) contributes one
row per metrics file ``metrics/<model>/s<seed>.json`` (any model: baseline, agm, the controls), keyed by
the revision's ``lambda`` param and its ``config``, a hash of every other param that changes a result
(:func:`result_params`), with the importance-weight diagnostics of the same run read from its dvclive
summary ``live/<model>/s<seed>/metrics.json`` in the same revision. Runs of another ``train.steps``,
``profile`` or any other setting therefore never share a row or a mean with the rest.

- :func:`sweep_rows`: one row per distinct (config, model, λ, seed); see its docstring for the columns.
- :func:`summarize`: per (config, model, λ), mean, 95% Student-t interval and the number of seeds used for
  every metric, and every model's paired-by-seed difference from the baseline at the same config and λ;
  :func:`incomplete` says where a mean uses fewer seeds than there are runs.
- :func:`one_config`: the rows of one config; refuses several, naming the params they differ in
  (:func:`config_differences`).
- :func:`without_workspace`: the records without the workspace's (for a workspace not reproduced).
- :func:`plot_sweep`: one panel per metric against λ (log axis), one line per model.

The baseline never reads λ, so every experiment of a sweep carries the same (cached) baseline runs: it
appears once under every λ, which is what pairs it with each model at that λ.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from agm.config.feature_spaces import DISTANCE_NAMES
from agm.report.stats import mean_ci, power_of_pairs
from agm.report.tables import PAPER_RELATIVE_PCT

METRIC_FILE = re.compile(r"^metrics/([^/]+)/s(\d+)\.json$")
LIVE_FILE = re.compile(r"^live/([^/]+)/s(\d+)/metrics\.json$")
BASELINE = "baseline"
WEIGHT_METRICS = {"w_ratio": "w_ratio", "ess": "w_ess"}
"""Row column -> key under ``train`` in the dvclive summary (its last logged value)."""
QUALITY = ("precision", "recall")
KEYS = ("config", "model", "lambda", "seed")
EXTRA = ("rev", "name")
NOT_A_RESULT = ("lambda", "seeds", "controls", "execution")
"""Params that do not change any one run's result: λ is a key of its own; ``seeds`` and ``controls`` only
say which runs exist (each run's seed is in its file name, its model in its folder); ``execution`` says how the
stages ran (process count, cadence, device), which no run identity holds (agm.config.params.RESULT_KEYS)."""
WORKSPACE = "workspace"


def _entries(exp_show: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every revision record of `dvc exp show --json`: workspace, commits and their experiments."""
    for entry in exp_show:
        yield entry
        for group in entry.get("experiments") or []:
            yield from _entries(group.get("revs") or [])


def _data(content: Any) -> dict[str, Any]:
    """The parsed file of a `dvc exp show` metrics/params record ({} for an error or a missing file)."""
    return ((content or {}).get("data") or {}) if isinstance(content, dict) else {}


def result_params(params: dict[str, Any]) -> dict[str, str]:
    """The params that change a run's result, flattened to ``section.key`` -> JSON of the value: every param
    but :data:`NOT_A_RESULT` (profile, data, model, potential, train, sample, eval: all of them, so that an
    experiment at another ``train.steps`` or ``profile`` is never averaged with the rest)."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = json.dumps(value, sort_keys=True)

    walk("", {k: v for k, v in params.items() if k not in NOT_A_RESULT})
    return dict(sorted(flat.items()))


def config_id(params: dict[str, Any]) -> str:
    """8 hex digits of sha256 over :func:`result_params`: equal for two revisions exactly when every
    result-changing param is equal."""
    return hashlib.sha256(json.dumps(result_params(params)).encode()).hexdigest()[:8]


def config_differences(exp_show: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``section.key`` -> {config id -> value (JSON)} for every result param whose value differs between the
    configs of the revisions in ``exp_show`` (a key absent from a config shows as ``absent``)."""
    configs: dict[str, dict[str, str]] = {}
    for entry in _entries(exp_show):
        params = _params(entry)
        if "lambda" in params:
            configs.setdefault(config_id(params), result_params(params))
    keys = sorted(set().union(*configs.values())) if configs else []
    return {k: {c: flat.get(k, "absent") for c, flat in configs.items()} for k in keys
            if len({flat.get(k, "absent") for flat in configs.values()}) > 1}


def one_config(rows: pd.DataFrame, exp_show: list[dict[str, Any]], config: str | None = None) -> pd.DataFrame:
    """The rows of one config: ``config``, or the only one there is.

    Raises:
        ValueError: ``config`` is not among the rows' configs; or it is None and there are several, naming
            the params they differ in (from ``exp_show``, the records ``rows`` came from).
    """
    configs = sorted(rows["config"].unique())
    if config is None and len(configs) > 1:
        diff = "; ".join(f"{key} ({', '.join(f'{c}: {v}' for c, v in values.items())})"
                         for key, values in config_differences(exp_show).items())
        raise ValueError(f"the revisions hold {len(configs)} configs ({', '.join(configs)}) that differ in {diff}: "
                         "pick one with --config")
    if config is not None and config not in configs:
        raise ValueError(f"no config {config!r} among {', '.join(configs)}")
    return rows if config is None else rows[rows["config"] == config].reset_index(drop=True)


def without_workspace(exp_show: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of ``exp_show`` but the workspace's (its rows are not results when `dvc status` is not
    clean: its metrics files may predate its params or code)."""
    return [entry for entry in exp_show if entry.get("rev") != WORKSPACE]


def _params(entry: dict[str, Any]) -> dict[str, Any]:
    """The params.yaml of one revision record ({} when it has none)."""
    return _data(((entry.get("data") or {}).get("params") or {}).get("params.yaml"))


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
    """One row per distinct (config, model, λ, seed, metrics) in a parsed `dvc exp show --json`.

    Columns:
        config: :func:`config_id` of the revision's params (every param that changes a result but λ).
        model: the folder of ``metrics/<model>/s<seed>.json`` (baseline, agm, no_detach, ...).
        lambda: the revision's ``lambda`` param (the baseline's rows repeat under every λ).
        seed: the training seed ``<seed>`` of the file name.
        fd_digits or fid: the Fréchet distance, named for the file's ``feature_space``
            (:data:`agm.math.metrics.sample_quality.DISTANCE_NAMES`).
        precision, recall: improved precision and recall of the samples (NaN when the file has no value, or null).
        w_ratio: last logged max/min importance-weight ratio of a batch (``train.w_ratio`` of
            ``live/<model>/s<seed>/metrics.json``); NaN for unweighted models or a missing summary.
        ess: last logged effective sample size of the weights, as a fraction of the batch
            (``train.w_ess``); NaN likewise.
        rev, name: the revision and experiment name the row was first found in.

    Rows equal in every column but rev and name (the workspace, the commit an experiment came from and
    the experiment itself) are counted once. Revisions without a ``lambda`` param are skipped. Pass the
    records through :func:`without_workspace` first when the workspace is not reproduced.
    """
    rows = []
    for entry in _entries(exp_show):
        data = entry.get("data") or {}
        params = _params(entry)
        if "lambda" not in params:
            continue
        config = config_id(params)
        files = {path: _data(content) for path, content in (data.get("metrics") or {}).items()}
        live = {m.groups(): values for path, values in files.items() if (m := LIVE_FILE.match(path))}
        for path, values in files.items():
            match = METRIC_FILE.match(path)
            space = values.get("feature_space")
            if not match or space not in DISTANCE_NAMES:
                continue
            dist = DISTANCE_NAMES[space]
            summary = live.get(match.groups(), {})
            rows.append({"config": config, "model": match.group(1), "lambda": float(params["lambda"]),
                         "seed": int(match.group(2)),
                         dist: _float(values.get(dist)), **{q: _float(values.get(q)) for q in QUALITY},
                         **{col: _live_value(summary, key) for col, key in WEIGHT_METRICS.items()},
                         "rev": entry.get("rev"), "name": entry.get("name") or ""})
    if not rows:
        raise ValueError("no revision with a `lambda` param and metrics/<model>/s<seed>.json was found")
    df = pd.DataFrame(rows)
    columns = [*KEYS, *_distances(df.columns), *QUALITY, *WEIGHT_METRICS, *EXTRA]
    df = df[columns].drop_duplicates(subset=[c for c in columns if c not in EXTRA])
    df = df.assign(_order=df["model"].map(_order)).sort_values(["config", "_order", "lambda", "seed"],
                                                                kind="stable")
    return df.drop(columns="_order").reset_index(drop=True)


def _check_unique(rows: pd.DataFrame) -> None:
    """Two different results for one (model, λ, seed) (e.g. a workspace run with other params than the
    experiments') cannot be told apart here: refuse rather than count them as two seeds."""
    dup = rows[rows.duplicated(subset=list(KEYS), keep=False)]
    if not dup.empty:
        where = "; ".join(f"{m} λ={lam:g} seed {s}: revs {', '.join(map(str, g['rev']))}"
                          for (_, m, lam, s), g in dup.groupby(list(KEYS), sort=True))
        raise ValueError(f"conflicting results for the same run ({where}); save `dvc exp show --json` "
                         "without the stale revisions and pass it as --exp-json")


def _ci(values: Any) -> tuple[float, float, int]:
    """Mean, 95% half-width and number of the non-NaN values (NaN, NaN, 0 when there are none)."""
    x = [float(v) for v in values if not math.isnan(float(v))]
    if not x:
        return math.nan, math.nan, 0
    ci = mean_ci(x)
    return ci.mean, ci.half_width, len(x)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (config, model, λ): means, 95% Student-t intervals and seed counts, and paired differences from
    the baseline of the same config.

    Columns:
        config, model, lambda: as in :func:`sweep_rows`.
        seeds: the number of seeds (rows) of the model at that config and λ.
        <metric>, <metric>_ci, <metric>_n: for every metric of the rows (the distance, precision, recall,
            w_ratio, ess): mean over seeds, the half-width of its 95% Student-t interval (NaN with one
            seed) and the number of seeds they use: a NaN (a failed run, the baseline's w_ratio) is left
            out of both and so counts here, not in ``seeds``; NaN, NaN, 0 when all are NaN.
        paired_seeds: the seeds (space-separated) that have both this model's and the baseline's row at
            this config and λ; the differences use these only, so a seed without a baseline row is left
            out. Empty for the baseline itself.
        <m>_minus_baseline, <m>_minus_baseline_ci, <m>_minus_baseline_n: for the distance, precision and
            recall, the mean over paired seeds of (model − baseline) at the same config, λ and seed, its
            95% Student-t half-width, and the number of paired seeds where both values are numbers.
        <m>_minus_baseline_excludes_0: True when that interval excludes 0 (a difference beyond seed
            noise), False when it contains 0, empty when it is undefined (fewer than 2 paired seeds).
        <m>_minus_baseline_mde: the minimum detectable effect of those paired seeds (80% power, α = 0.05, their
            observed paired SD; agm.report.stats), and <m>_seeds_for_paper_effect: the paired seeds that would
            detect the paper's relative change of that metric (distance −10.7%, precision +2.8%, recall +2.1%)
            from this baseline's mean; NaN where undefined (fewer than 2 paired seeds).
        The difference columns are empty for the baseline.
    """
    _check_unique(rows)
    metrics = [c for c in rows.columns if c not in (*KEYS, *EXTRA)]
    paired_metrics = [*_distances(rows.columns), *QUALITY]
    base = rows[rows["model"] == BASELINE].set_index(["config", "lambda", "seed"])
    out = []
    for (config, _, model, lam), group in rows.assign(_order=rows["model"].map(_order)).groupby(
            ["config", "_order", "model", "lambda"], sort=True):
        row: dict[str, Any] = {"config": config, "model": model, "lambda": lam, "seeds": len(group)}
        for m in metrics:
            row[m], row[f"{m}_ci"], row[f"{m}_n"] = _ci(group[m])
        if model != BASELINE:
            mine = group.set_index("seed")
            seeds = sorted(s for s in mine.index if (config, lam, s) in base.index)
            row["paired_seeds"] = " ".join(map(str, seeds))
            for m in paired_metrics:
                diffs = [mine.at[s, m] - base.at[(config, lam, s), m] for s in seeds]
                mean, half, n = _ci(diffs)
                row[f"{m}_minus_baseline"], row[f"{m}_minus_baseline_ci"] = mean, half
                row[f"{m}_minus_baseline_n"] = n
                row[f"{m}_minus_baseline_excludes_0"] = None if math.isnan(half) else bool(abs(mean) > half)
                finite = [d for d in diffs if math.isfinite(d)]
                base_mean = float(np.nanmean([base.at[(config, lam, s), m] for s in seeds])) if seeds else math.nan
                paper = PAPER_RELATIVE_PCT.get("distance" if m in DISTANCE_NAMES.values() else m)
                pp = power_of_pairs(finite, base_mean, paper)
                row[f"{m}_minus_baseline_mde"], row[f"{m}_seeds_for_paper_effect"] = pp.mde, pp.seeds_for_paper
        out.append(row)
    columns = ["config", "model", "lambda", "seeds", *(c for m in metrics for c in (m, f"{m}_ci", f"{m}_n")),
               "paired_seeds", *(f"{m}{s}" for m in paired_metrics for s in (
                   "_minus_baseline", "_minus_baseline_ci", "_minus_baseline_n", "_minus_baseline_excludes_0",
                   "_minus_baseline_mde", "_seeds_for_paper_effect"))]
    return pd.DataFrame(out).reindex(columns=columns)


def incomplete(summary: pd.DataFrame) -> list[str]:
    """One line per (config, model, λ) whose mean of a metric uses fewer seeds than it has rows (a NaN or
    null metric), e.g. ``agm λ=0.1: fd_digits over 2 of 3 seeds``; metrics NaN at every seed (the
    baseline's weights) are not listed."""
    counts = [c[:-2] for c in summary.columns if c.endswith("_n") and not c.endswith("_minus_baseline_n")]
    lines = []
    for _, row in summary.iterrows():
        short = [f"{m} over {int(row[f'{m}_n'])} of {int(row['seeds'])} seeds" for m in counts
                 if 0 < row[f"{m}_n"] < row["seeds"]]
        if short:
            lines.append(f"{row['model']} λ={row['lambda']:g} (config {row['config']}): {', '.join(short)}")
    return lines


def _flat(df: pd.DataFrame, m: str) -> bool:
    """Whether metric ``m`` (mean and interval) is the same at every λ of ``df`` (one model's summary)."""
    values = df[[m, f"{m}_ci"]].to_numpy(dtype=np.float64)
    return bool(np.allclose(values, values[:1], rtol=1e-9, atol=0.0, equal_nan=True))


def plot_sweep(summary: pd.DataFrame, path: str | Path) -> None:
    """Each metric of :func:`summarize` against λ on a log axis, one line per model with 95% error bars.

    Panels: the distance(s), precision, recall, w_ratio and ess, where present. λ = 0 cannot sit on a
    log axis and is left out. A model that is the same at every λ (the baseline, which never reads λ)
    is drawn as a horizontal band, mean ± interval, instead of a line. One config only: runs of other
    settings are another sweep.
    """
    if summary["config"].nunique() > 1:
        raise ValueError(f"one sweep per plot: the summary holds configs {', '.join(summary['config'].unique())}")
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
