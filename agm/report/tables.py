"""Table 3 of the paper (baseline vs AGM on distance, precision, recall) and table rendering.

- :data:`PAPER_TABLE3` holds the paper's numbers; :func:`paper_table3` renders them with the
  deltas computed from them (ΔFID = -3.06, -10.7 %; precision and recall +0.020, +2.8 % / +2.1 %).
- :func:`table3_values` reduces per-seed metrics to means, Student-t intervals and the AGM vs
  baseline deltas; :func:`table3` renders them as text cells.
- :func:`to_markdown` / :func:`to_html` turn a DataFrame into GitHub markdown / an HTML table.

A number that cannot be computed (a seed whose output is missing, a value that is NaN or infinite, a
relative change over a baseline of exactly 0) renders as "n/a (<reason>)" (:func:`na`), never raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from agm.report.stats import MeanCI, mean_ci, na

METRICS = ("distance", "precision", "recall")
"""Metric keys of a reproduced Table 3; "distance" is FD in whichever feature space was used."""

DIGITS = {"distance": 2, "precision": 3, "recall": 3}
"""Decimals shown per metric, as in the paper's Table 3."""

PAPER_TABLE3 = {
    "baseline": {"fid": 28.53, "precision": 0.705, "recall": 0.932},
    "agm": {"fid": 25.47, "precision": 0.725, "recall": 0.952},
}
"""Paper Table 3: drift-only baseline (λ = 0) and full AGM (λ = 0.1), 500k steps each."""

PAPER_RELATIVE_PCT = {
    metric: 100.0 * (PAPER_TABLE3["agm"][key] / PAPER_TABLE3["baseline"][key] - 1.0)
    for metric, key in (("distance", "fid"), ("precision", "precision"), ("recall", "recall"))
}
"""The paper's Table 3 change of AGM over the baseline, in percent: FID −10.7, precision +2.8, recall +2.1."""

DELTA_ABS = "Δ (absolute)"
DELTA_REL = "Δ (relative, %)"


def number(value: float, digits: int, sign: str = "") -> str:
    """``value`` with ``digits`` decimals (``sign`` "+": always signed), or "n/a (NaN)" / "n/a (inf)"."""
    if math.isfinite(value):
        return f"{value:{sign}.{digits}f}"
    return na("NaN" if math.isnan(value) else "inf")


@dataclass(frozen=True)
class Delta:
    """AGM's change over the baseline in one metric, or why it has none (then ``value`` is nan)."""

    value: float
    reason: str = ""

    def format(self, digits: int, unit: str = "") -> str:
        """The signed value with ``digits`` decimals and ``unit``, or "n/a (reason)"."""
        if self.reason:
            return na(self.reason)
        text = number(self.value, digits, sign="+")
        return text + unit if math.isfinite(self.value) else text


@dataclass(frozen=True)
class Table3Values:
    """The numbers behind a Table 3.

    Attributes:
        models: model -> metric -> mean and interval over seeds; "baseline" and "agm" first.
        delta_abs: metric -> mean(agm) - mean(baseline).
        delta_rel: metric -> 100 · (mean(agm) - mean(baseline)) / mean(baseline), in percent; n/a when
            mean(baseline) is 0.
    """

    models: dict[str, dict[str, MeanCI]]
    delta_abs: dict[str, Delta]
    delta_rel: dict[str, Delta]


def _deltas(base: MeanCI, agm: MeanCI, metric: str) -> tuple[Delta, Delta]:
    """(absolute, relative) change of ``metric`` from ``base`` to ``agm``; n/a when a mean is, or (relative
    only) when the baseline's mean is 0."""
    reason = ", ".join(f"{model}: {ci.reason}" for model, ci in (("baseline", base), ("agm", agm)) if ci.reason)
    if reason:
        return Delta(math.nan, reason), Delta(math.nan, reason)
    diff = agm.mean - base.mean
    if base.mean == 0:
        return Delta(diff), Delta(math.nan, f"baseline {metric} is 0")
    return Delta(diff), Delta(100.0 * diff / base.mean)


def table3_values(reproduced: dict[str, dict[str, Sequence[float | None]]],
                  seeds: Sequence[int] | None = None) -> Table3Values:
    """Reduce per-seed metrics to means, intervals and the AGM vs baseline deltas.

    Args:
        reproduced: model -> metric -> per-seed values, for metrics :data:`METRICS` and at least
            the models "baseline" and "agm"; further models are kept (after those two, in order).
            None stands for a seed whose metrics are missing (see :func:`mean_ci`).
        seeds: the seed of each value, to name them where a number is n/a.
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
        models[model] = {metric: mean_ci(reproduced[model][metric], seeds=seeds) for metric in METRICS}
    deltas = {m: _deltas(models["baseline"][m], models["agm"][m], m) for m in METRICS}
    return Table3Values(models=models, delta_abs={m: d[0] for m, d in deltas.items()},
                        delta_rel={m: d[1] for m, d in deltas.items()})


def _render_table3(values: Table3Values, distance_name: str) -> pd.DataFrame:
    columns = {"distance": distance_name, "precision": "Precision", "recall": "Recall"}
    rows = []
    for model, cis in values.models.items():
        seeds = "/".join(sorted({str(ci.n) for ci in cis.values()}, key=int))
        row = {"Model": model, "seeds": seeds}
        row |= {columns[m]: cis[m].format(DIGITS[m]) for m in METRICS}
        rows.append(row)
    rows.append({"Model": DELTA_ABS, "seeds": ""} | {columns[m]: values.delta_abs[m].format(DIGITS[m])
                                                      for m in METRICS})
    rows.append({"Model": DELTA_REL, "seeds": ""} | {columns[m]: values.delta_rel[m].format(1, "%")
                                                      for m in METRICS})
    return pd.DataFrame(rows, columns=["Model", *columns.values(), "seeds"])


def table3(reproduced: dict[str, dict[str, Sequence[float | None]]], distance_name: str,
           seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Reproduced Table 3 as text cells: one row per model, then the AGM vs baseline deltas.

    Model cells read "mean ± half-width" (95 % Student-t over seeds) when there are several
    seeds, else the plain value; the "seeds" column gives n. Deltas compare means. A number that
    cannot be computed reads "n/a (<reason>)", e.g. "n/a (seed 1 missing)", "n/a (seed 0 is NaN)",
    "n/a (baseline precision is 0)".

    Args:
        reproduced: see :func:`table3_values`.
        distance_name: header of the distance column, e.g. "FD (digits classifier)" or
            "FID (Inception-v3)", so that a distance is never called FID when it is not.
        seeds: see :func:`table3_values`.

    Returns:
        DataFrame with columns Model, ``distance_name``, Precision, Recall, seeds.
    """
    return _render_table3(table3_values(reproduced, seeds), distance_name)


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
