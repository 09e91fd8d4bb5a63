"""The learning curve at convergence: a metric against training steps over seeds, and where it stops improving.

Every (arm, seed) trains one run with a constant learning rate after its warm-up, keeping EMA snapshots; the
snapshot at step s is the model an s-step run of the same recipe ends with (nothing in the recipe depends on the
run's total length), so one long run per seed gives the whole curve. Each snapshot is scored on the same number of
samples drawn with its seed's sampling noise, so within a seed the points differ only by the weights.

- :func:`curve_table`: per (arm, step), the mean over seeds of each metric and its 95% t-interval half-width.
- :func:`paired_to_reference`: per (arm, step), the mean over seeds of arm − reference (the same seed's run of the
  reference arm at the same step, sampled with the same noise) and its 95% t-interval.
- :func:`doubling_gains`: the relative improvement of a metric (lower is better) from step s to 2s,

      gain(s) = (m(s) − m(2s)) / m(s),

  on the mean curve of an arm.
- :func:`training_length_section`: the report's sentence on where a run's steps sit on the measured curve.
- :func:`plateau_length`: the plateau length, the first step s of the grid after which every doubling gains less
  than ``tol`` (5%): gain(s') < tol for every s' ≥ s with 2s' on the grid. None when the last doubling still
  gains ``tol`` or more (the curve has not flattened within the steps run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from agm.report.page import Section
from agm.report.stats import mean_ci

KEYS = ("arm", "step")


def curve_table(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (arm, step): ``n`` seeds, and per metric ``<metric>`` (mean) and ``<metric>_hw`` (the 95%
    t-interval's half-width; nan for one seed).

    Args:
        runs: one row per (arm, seed, step) with the columns ``arm``, ``seed``, ``step`` and ``metrics``.
        metrics: the columns to average.
    """
    missing = [c for c in (*KEYS, "seed", *metrics) if c not in runs.columns]
    if missing:
        raise ValueError(f"the runs table has no column(s) {missing}")
    if runs.duplicated(["arm", "seed", "step"]).any():
        raise ValueError("the runs table has more than one row for an (arm, seed, step)")
    rows = []
    for (arm, step), group in runs.groupby(list(KEYS), sort=True):
        row: dict[str, object] = {"arm": arm, "step": int(step), "n": len(group),
                                  "seeds": " ".join(str(s) for s in sorted(group["seed"]))}
        for metric in metrics:
            ci = mean_ci(list(group[metric]))
            row[metric], row[f"{metric}_hw"] = ci.mean, ci.half_width
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Doubling:
    """One doubling of the steps on an arm's mean curve: the metric at ``step`` and at ``2 · step``, and the
    relative gain (m(s) − m(2s)) / m(s) (positive: the metric fell, i.e. improved)."""

    step: int
    value: float
    value_doubled: float
    gain: float


def doubling_gains(steps: Sequence[int], values: Sequence[float]) -> list[Doubling]:
    """Every doubling s → 2s with both points among ``steps`` (a metric where lower is better, e.g. a distance).

    Raises ValueError on unsorted or repeated steps, or a non-finite or non-positive value at a doubling's start.
    """
    steps, values = [int(s) for s in steps], [float(v) for v in values]
    if len(steps) != len(values):
        raise ValueError(f"{len(steps)} steps but {len(values)} values")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must increase strictly, got {steps}")
    at = dict(zip(steps, values))
    out = []
    for s in steps:
        if 2 * s not in at:
            continue
        m, m2 = at[s], at[2 * s]
        if not (math.isfinite(m) and math.isfinite(m2)) or m <= 0:
            raise ValueError(f"the metric at steps {s} and {2 * s} is {m}, {m2}: need finite values and m(s) > 0")
        out.append(Doubling(step=s, value=m, value_doubled=m2, gain=(m - m2) / m))
    return out


def plateau_length(steps: Sequence[int], values: Sequence[float], tol: float = 0.05) -> int | None:
    """The first step s after which every doubling on the grid gains less than ``tol`` (see the module docstring);
    None when no doubling on the grid does, or the last one gains ``tol`` or more."""
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    gains = doubling_gains(steps, values)
    plateau = None
    for d in reversed(gains):
        if d.gain >= tol:
            break
        plateau = d.step
    return plateau


def paired_to_reference(runs: pd.DataFrame, metrics: Sequence[str], reference: str = "baseline") -> pd.DataFrame:
    """One row per (arm, step) of every arm but ``reference``: ``n`` paired seeds, and per metric
    ``d_<metric>`` (mean of arm − reference over the seeds both have at that step) and ``d_<metric>_hw``
    (its 95% t-interval half-width; nan for one seed)."""
    ref = runs[runs.arm == reference].set_index(["seed", "step"])
    rows = []
    for (arm, step), group in runs[runs.arm != reference].groupby(list(KEYS), sort=True):
        group = group.set_index(["seed", "step"])
        both = group.index.intersection(ref.index)
        if not len(both):
            continue
        row: dict[str, object] = {"arm": arm, "reference": reference, "step": int(step), "n": len(both),
                                  "seeds": " ".join(str(s) for s, _ in sorted(both))}
        for metric in metrics:
            ci = mean_ci(list(group.loc[both, metric] - ref.loc[both, metric]))
            row[f"d_{metric}"], row[f"d_{metric}_hw"] = ci.mean, ci.half_width
        rows.append(row)
    return pd.DataFrame(rows)


def training_length_section(steps: int, plateau: Mapping[str, Any] | None, profile: str) -> list[Section]:
    """Where this run's training length sits on the default profile's measured learning curve
    (docs/results/converged/plateau.json: per arm, every doubling's fd_digits gain and the plateau length, the first
    step after which each doubling gains less than 5%); none for another profile or without the file."""
    if plateau is None or profile != "default":
        return []
    arms = plateau["arms"]
    lengths = {arm: a["plateau_length_5pct"] for arm, a in arms.items() if a.get("plateau_length_5pct")}
    if not lengths:
        return []
    length = max(lengths.values())
    where = "at" if steps == length else "short of" if steps < length else "past"
    gains = {arm: d["gain"] for arm, a in arms.items() for d in a["doublings"] if d["step"] == steps}
    doubling = ("" if not gains else " Doubling this run's steps changes fd_digits by " + ", ".join(
        f"{-100 * g:+.0f}% ({arm})" for arm, g in gains.items()) + " on that curve (lower is better).")
    text = (f"This run trains {steps:,} steps. On this profile's learning curve, measured at 10,000 samples per "
            f"point (docs/results/converged), every doubling after {length:,} steps gains less than 5% in fd_digits ("
            + ", ".join(f"{arm}: {v:,}" for arm, v in lengths.items()) + f"): the run is {where} the plateau."
            + doubling)
    return [Section("Training length", text)]
