"""The report's computations over logged curves, metrics and metric-vs-steps frames; no drawing, no files.

- :func:`ewm_smooth`: the exponential moving average that both the figures' trend lines and the
  collapse rule of the controls smooth with (each caller picks its own span).
- :func:`first_step_reaching`: the first checkpoint step at which a metric reaches a target level.
- :func:`mean_over_seeds`: per-step mean and 95 % half-width of several seeds' metric-vs-steps frames.
- :func:`compare_steps`: when AGM's mean curve first reaches the baseline's final value.
- :func:`paired_gap_to_final`: AGM's gap to the baseline's final value at every snapshot, paired by seed, and
  the step at which it crosses zero with an interval.
- :func:`reproduced_metrics`: per-seed distance, precision and recall of every model, as Table 3 takes them.
- :func:`weight_time_correlation`: the mean over seeds of each run's average corr(w, t).
- :func:`logged_step_times`: each run's logged seconds per step, as the training-cost table takes them.

A run whose output is missing is None in the per-seed lists these take and give (see
:func:`agm.report.stats.mean_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agm.report.stats import MeanCI, mean_ci


def ewm_smooth(values: pd.Series, span: int) -> pd.Series:
    """Exponential moving average of ``values`` with the given ``span`` (pandas' ``ewm``); NaNs are skipped.

    Callers that want a span proportional to the curve's length pass e.g. ``max(2, len(values) // 50)``.
    """
    return values.ewm(span=span, ignore_na=True).mean()


def first_step_reaching(
    steps: Sequence[int],
    values: Sequence[float],
    target: float,
    lower_is_better: bool = True,
) -> int | None:
    """The smallest step whose value is at least as good as ``target``, or None if none is.

    "At least as good" is ``value <= target`` when lower is better (FD), else ``value >= target``
    (precision, recall). NaN values never reach the target.

    Args:
        steps: checkpoint steps, in any order.
        values: metric value at each step, same length as ``steps``.
        target: level to reach.
        lower_is_better: direction of the metric.
    """
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} vs {len(values)}")
    for step, value in sorted(zip(steps, values, strict=True)):
        if value <= target if lower_is_better else value >= target:
            return int(step)
    return None


def mean_over_seeds(frames: Sequence[pd.DataFrame], metric: str) -> pd.DataFrame:
    """Per-step mean of the metric-vs-steps frames of several seeds, with a 95% half-width column.

    Returns:
        DataFrame with columns step, ``metric``, ``f"{metric}_ci"`` (nan with one seed) and n, by step.
    """
    long = pd.concat(frames, ignore_index=True)
    rows = []
    for step, group in long.groupby("step", sort=True):
        ci = mean_ci(group[metric].tolist())
        rows.append({"step": int(step), metric: ci.mean, f"{metric}_ci": ci.half_width, "n": ci.n})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class StepsComparison:
    """AGM's metric-vs-steps curve against the baseline's final value, both averaged over seeds.

    Attributes:
        curves: long frame of the per-step means (columns step, metric, metric_ci, n, model), baseline first.
        baseline_final: the baseline's mean metric at its last step.
        agm_reaches_at: the first step at which AGM's mean is at least as good (lower), or None.
        total_steps: the baseline's last step.
    """

    curves: pd.DataFrame
    baseline_final: float
    agm_reaches_at: int | None
    total_steps: int


def compare_steps(steps: dict[str, Sequence[pd.DataFrame]], metric: str) -> StepsComparison:
    """Average "baseline" and "agm" over seeds and find where AGM reaches the baseline's final ``metric``.

    Args:
        steps: model -> per-seed metric-vs-steps frames (columns step, ``metric``, ...); lower is better.
    """
    means = {model: mean_over_seeds(steps[model], metric) for model in ("baseline", "agm")}
    curves = pd.concat([means[model].assign(model=model) for model in ("baseline", "agm")], ignore_index=True)
    baseline_final = float(means["baseline"][metric].iloc[-1])
    reach = first_step_reaching(means["agm"]["step"].tolist(), means["agm"][metric].tolist(), baseline_final,
                                lower_is_better=True)
    return StepsComparison(curves, baseline_final, reach, int(means["baseline"]["step"].max()))


def _zero_crossing(steps: Sequence[int], values: Sequence[float]) -> float | None:
    """The first step at which the piecewise-linear curve through (steps, values) reaches 0 from above,
    or None if it stays above 0 (or has a NaN before reaching it)."""
    prev: tuple[int, float] | None = None
    for step, value in zip(steps, values, strict=True):
        if math.isnan(value):
            return None
        if value <= 0:
            if prev is None:
                return float(step)
            s0, v0 = prev
            return s0 + (step - s0) * v0 / (v0 - value)
        prev = (step, value)
    return None


@dataclass(frozen=True)
class GapToFinal:
    """AGM's metric at each snapshot minus the baseline's final metric of the same seed (lower is better).

    Attributes:
        steps: the snapshot steps, ascending.
        gaps: for each step, mean ± 95% t half-width of AGM(step) − baseline(last step) over seeds.
        crossing: the step at which the mean gap reaches 0 (linear between snapshots), or None if it does not.
        crossing_low, crossing_high: the steps at which the lower and the upper end of the pointwise 95% band
            reach 0: an interval for ``crossing`` (``crossing_high`` None: not within the steps run).
        total_steps: the last step.
    """

    steps: list[int]
    gaps: list[MeanCI]
    crossing: float | None
    crossing_low: float | None
    crossing_high: float | None
    total_steps: int


def paired_gap_to_final(steps: dict[str, Sequence[pd.DataFrame]], metric: str) -> GapToFinal:
    """The paper's metric-vs-steps claim, paired by seed: d_s(k) = AGM_s(k) − baseline_s(K) for every snapshot
    step k and seed s (K the last step), averaged over seeds with a Student-t interval; AGM matches the
    baseline's final value where the mean of d crosses 0.

    Args:
        steps: "baseline" and "agm" -> per-seed metric-vs-steps frames, in the same seed order, every frame
            with the same steps (columns step, ``metric``); other grids, or a missing or non-finite value, are
            refused with a ValueError naming the frame.
    """
    base, agm = steps["baseline"], steps["agm"]
    if len(base) != len(agm) or not base:
        raise ValueError(f"need the same number (> 0) of baseline and agm frames, got {len(base)} and {len(agm)}")
    grid = sorted(int(k) for k in agm[0]["step"])
    columns = []
    for i, (a, b) in enumerate(zip(agm, base, strict=True)):
        for name, frame in (("agm", a), ("baseline", b)):
            if sorted(int(k) for k in frame["step"]) != grid:  # the final step K must be the same run length
                raise ValueError(f"the {name} frame of pair {i} has steps {sorted(int(k) for k in frame['step'])}, "
                                 f"not the first agm frame's {grid}")
            if not np.isfinite(frame[metric].to_numpy(dtype=float)).all():  # a NaN would read as "never crosses"
                raise ValueError(f"the {name} frame of pair {i} has a missing or non-finite {metric}")
        final = float(b.sort_values("step")[metric].iloc[-1])
        columns.append(a.sort_values("step")[metric].to_numpy(dtype=float) - final)
    gaps = [mean_ci([float(c[i]) for c in columns]) for i in range(len(grid))]
    mean = [g.mean for g in gaps]
    half = [0.0 if math.isnan(g.half_width) else g.half_width for g in gaps]
    return GapToFinal(
        steps=grid, gaps=gaps, crossing=_zero_crossing(grid, mean),
        crossing_low=_zero_crossing(grid, [m - h for m, h in zip(mean, half, strict=True)]),
        crossing_high=_zero_crossing(grid, [m + h for m, h in zip(mean, half, strict=True)]),
        total_steps=int(base[0]["step"].max()),
    )


def _metric(row: dict[str, Any] | None, key: str) -> float | None:
    """``row[key]`` as a float: None for a missing metrics file, nan for a JSON null."""
    if row is None:
        return None
    return math.nan if row[key] is None else float(row[key])


def reproduced_metrics(metrics: dict[str, Sequence[dict[str, Any] | None]], models: Sequence[str],
                       distance: str) -> dict[str, dict[str, list[float | None]]]:
    """model -> {"distance", "precision", "recall"} -> per-seed values, from the evaluate stage's metrics.

    Args:
        metrics: model -> per-seed metrics dicts (None: the seed's file is missing, its values are None).
        models: the models to take, in order.
        distance: the key of the distance in a metrics dict (e.g. "fd_digits").
    """
    keys = {"distance": distance, "precision": "precision", "recall": "recall"}
    return {model: {name: [_metric(row, key) for row in metrics[model]] for name, key in keys.items()}
            for model in models}


def mean_over_runs(curves: Sequence[pd.DataFrame | None], column: str,
                   seeds: Sequence[int] | None = None) -> MeanCI:
    """Mean and 95 % interval over seeds of each run's ``column`` averaged over its logged steps (a missing
    run: n/a, named by ``seeds``)."""
    return mean_ci([None if curve is None else float(curve[column].mean()) for curve in curves], seeds=seeds)


def weight_time_correlation(curves: Sequence[pd.DataFrame | None], seeds: Sequence[int] | None = None) -> MeanCI:
    """Mean and 95 % interval over seeds of each run's corr(w, t) averaged over its logged steps (w_t_corr)."""
    return mean_over_runs(curves, "w_t_corr", seeds)


def logged_step_times(curves: dict[str, Sequence[pd.DataFrame | None]]) -> dict[str, list[list[float] | None]]:
    """model -> per-seed logged seconds per training step (dvclive's step_time_s, NaNs dropped; None for a
    missing run)."""
    return {model: [None if curve is None else curve["step_time_s"].dropna().tolist() for curve in per_seed]
            for model, per_seed in curves.items()}
