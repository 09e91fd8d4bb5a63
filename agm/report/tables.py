"""Table 3 of the paper (baseline vs AGM on distance, precision, recall) and table rendering.

- :data:`PAPER_TABLE3` holds the paper's numbers; :func:`paper_table3` renders them with the
  deltas computed from them (ΔFID = -3.06, -10.7 %; precision and recall +0.020, +2.8 % / +2.1 %).
- :func:`table3_values` reduces per-seed metrics to means, Student-t intervals and the AGM vs
  baseline deltas; :func:`table3` renders them as text cells.
- :func:`training_cost` compares the logged seconds per training step of every model with AGM's.
- :func:`to_markdown` / :func:`to_html` turn a DataFrame into GitHub markdown / an HTML table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("distance", "precision", "recall")
"""Metric keys of a reproduced Table 3; "distance" is FD in whichever feature space was used."""

DIGITS = {"distance": 2, "precision": 3, "recall": 3}
"""Decimals shown per metric, as in the paper's Table 3."""

PAPER_TABLE3 = {
    "baseline": {"fid": 28.53, "precision": 0.705, "recall": 0.932},
    "agm": {"fid": 25.47, "precision": 0.725, "recall": 0.952},
}
"""Paper Table 3: drift-only baseline (λ = 0) and full AGM (λ = 0.1), 500k steps each."""

DELTA_ABS = "Δ (absolute)"
DELTA_REL = "Δ (relative, %)"


@dataclass(frozen=True)
class MeanCI:
    """Mean of n values with the half-width of its confidence interval (nan when n == 1)."""

    mean: float
    half_width: float
    n: int

    def format(self, digits: int) -> str:
        """The text "mean ± half_width" when there is an interval, else the plain mean."""
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval half-width, t_{(1+c)/2, n-1} · s / √n.

    Args:
        values: n >= 1 observations (e.g. one metric over seeds); s is their sample std (ddof=1).
        confidence: two-sided coverage c of the interval.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence, got shape {x.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = int(x.size)
    if n == 1:
        return MeanCI(mean=float(x[0]), half_width=math.nan, n=1)
    t = stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)
    return MeanCI(mean=float(x.mean()), half_width=float(t * x.std(ddof=1) / math.sqrt(n)), n=n)


@dataclass(frozen=True)
class Table3Values:
    """The numbers behind a Table 3.

    Attributes:
        models: model -> metric -> mean and interval over seeds; "baseline" and "agm" first.
        delta_abs: metric -> mean(agm) - mean(baseline).
        delta_rel: metric -> 100 · (mean(agm) - mean(baseline)) / mean(baseline), in percent.
    """

    models: dict[str, dict[str, MeanCI]]
    delta_abs: dict[str, float]
    delta_rel: dict[str, float]


def table3_values(reproduced: dict[str, dict[str, Sequence[float]]]) -> Table3Values:
    """Reduce per-seed metrics to means, intervals and the AGM vs baseline deltas.

    Args:
        reproduced: model -> metric -> per-seed values, for metrics :data:`METRICS` and at least
            the models "baseline" and "agm"; further models are kept (after those two, in order).
    """
    for required in ("baseline", "agm"):
        if required not in reproduced:
            raise ValueError(f"reproduced lacks model {required!r}; has {sorted(reproduced)}")
    order = [
        "baseline",
        "agm",
        *(m for m in reproduced if m not in ("baseline", "agm")),
    ]
    models: dict[str, dict[str, MeanCI]] = {}
    for model in order:
        missing = set(METRICS) - set(reproduced[model])
        if missing:
            raise ValueError(f"model {model!r} lacks metrics {sorted(missing)}")
        models[model] = {metric: mean_ci(reproduced[model][metric]) for metric in METRICS}
    base, agm = models["baseline"], models["agm"]
    delta_abs = {m: agm[m].mean - base[m].mean for m in METRICS}
    delta_rel = {m: 100.0 * delta_abs[m] / base[m].mean for m in METRICS}
    return Table3Values(models=models, delta_abs=delta_abs, delta_rel=delta_rel)


def _render_table3(values: Table3Values, distance_name: str) -> pd.DataFrame:
    columns = {"distance": distance_name, "precision": "Precision", "recall": "Recall"}
    rows = []
    for model, cis in values.models.items():
        seeds = "/".join(sorted({str(ci.n) for ci in cis.values()}, key=int))
        row = {"Model": model, "seeds": seeds}
        row |= {columns[m]: cis[m].format(DIGITS[m]) for m in METRICS}
        rows.append(row)
    rows.append(
        {"Model": DELTA_ABS, "seeds": ""}
        | {columns[m]: f"{values.delta_abs[m]:+.{DIGITS[m]}f}" for m in METRICS}
    )
    rows.append(
        {"Model": DELTA_REL, "seeds": ""}
        | {columns[m]: f"{values.delta_rel[m]:+.1f}%" for m in METRICS}
    )
    return pd.DataFrame(rows, columns=["Model", *columns.values(), "seeds"])


def table3(reproduced: dict[str, dict[str, Sequence[float]]], distance_name: str) -> pd.DataFrame:
    """Reproduced Table 3 as text cells: one row per model, then the AGM vs baseline deltas.

    Model cells read "mean ± half-width" (95 % Student-t over seeds) when there are several
    seeds, else the plain value; the "seeds" column gives n. Deltas compare means.

    Args:
        reproduced: see :func:`table3_values`.
        distance_name: header of the distance column, e.g. "FD (digits classifier)" or
            "FID (Inception-v3)", so that a distance is never called FID when it is not.

    Returns:
        DataFrame with columns Model, ``distance_name``, Precision, Recall, seeds.
    """
    return _render_table3(table3_values(reproduced), distance_name)


def paper_table3_values() -> Table3Values:
    """:data:`PAPER_TABLE3` as :class:`Table3Values` (n = 1, deltas computed from the numbers)."""
    return table3_values(
        {
            model: {
                "distance": [v["fid"]],
                "precision": [v["precision"]],
                "recall": [v["recall"]],
            }
            for model, v in PAPER_TABLE3.items()
        }
    )


def paper_table3() -> pd.DataFrame:
    """The paper's Table 3 with its deltas, in the layout of :func:`table3` (without seeds)."""
    return _render_table3(paper_table3_values(), "FID").drop(columns="seeds")


def training_cost(step_times: dict[str, Sequence[Sequence[float]]], reference: str = "agm") -> pd.DataFrame:
    """Seconds per training step of every model, and its ratio to ``reference``'s, over seeds.

    A run's cost is the median of its logged step times (each the mean over one logging interval), so a
    few slow intervals (start-up, a checkpoint) do not move it. The ratio is paired by seed,
    r_s = cost(model, s) / cost(reference, s), and both columns read "mean ± 95% interval" over seeds.

    Args:
        step_times: model -> per-seed sequences of logged step times in seconds (dvclive's step_time_s);
            every model has the reference's number of seeds, in the same order.
        reference: the model the ratios divide by.

    Returns:
        DataFrame with columns Model, "s / step", "× <reference>", seeds.
    """
    if reference not in step_times:
        raise ValueError(f"step_times lacks the reference model {reference!r}; has {sorted(step_times)}")
    ref = [float(np.median(times)) for times in step_times[reference]]
    rows = []
    for model, per_seed in step_times.items():
        cost = [float(np.median(times)) for times in per_seed]
        if len(cost) != len(ref):
            raise ValueError(f"model {model!r} has {len(cost)} seeds, {reference!r} has {len(ref)}")
        rows.append({"Model": model, "s / step": mean_ci(cost).format(3),
                     f"× {reference}": mean_ci([c / r for c, r in zip(cost, ref, strict=True)]).format(2),
                     "seeds": str(len(cost))})
    return pd.DataFrame(rows, columns=["Model", "s / step", f"× {reference}", "seeds"])


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub-flavoured markdown table of ``df``'s columns (the index is not shown).

    Numeric columns are right-aligned; "|" in cells is escaped.
    """

    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    header = [escape(str(c)) for c in df.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(escape(_cell(v)) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_html(df: pd.DataFrame) -> str:
    """HTML ``<table>`` of ``df``'s columns (the index is not shown), cells escaped."""
    return df.to_html(index=False, border=0, na_rep="", escape=True)
