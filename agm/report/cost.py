"""The report's training cost: AGM's cost relative to the baseline as a FLOP ratio, and the logged wall-clock
times with the spread that shows their noise.

    FLOPs per image   the cost stage's metrics (metrics/cost.json, counted by agm.report.flops where the networks
                      are built): F_step / B over one training step of the variant at this run's sizes
    logged s / step   each run's median over its logging intervals (dvclive's step_time_s); shown as the
                      median over seeds with the range over seeds and over the runs' intervals (10th–90th
                      percentile), never as a ratio: a run that shared the machine with other work is slower,
                      so two logged times compare machines' loads as much as models (docs/benchmark.md times
                      the steps interleaved, on an idle machine)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from agm.report import analysis, tables
from agm.report.outputs import RunOutputs
from agm.report.page import Section


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.3g}–{max(values):.3g}" if values else "n/a"


def training_cost(flops: Mapping[str, float], step_times: Mapping[str, Sequence[Sequence[float] | None]],
                  reference: str = "baseline") -> pd.DataFrame:
    """One row per model: GFLOP per image and its ratio to ``reference``'s (where counted), and the logged
    seconds per step: median over seeds, range over seeds, 10th–90th percentile of all logging intervals.

    Args:
        flops: model -> FLOPs per training image (the cost stage's); models missing here show n/a.
        step_times: model -> per-seed logged step times in seconds (None for a missing run).
        reference: the model the FLOP ratio divides by.
    """
    rows = []
    for model, per_seed in step_times.items():
        runs = [list(times) for times in per_seed if times]
        medians = [float(np.median(times)) for times in runs]
        pooled = np.concatenate(runs) if runs else np.array([])
        counted = model in flops and reference in flops
        rows.append({
            "Model": model,
            "GFLOP / image": f"{flops[model] / 1e9:.4g}" if model in flops else "n/a (not counted)",
            f"× {reference} (FLOPs)": f"{flops[model] / flops[reference]:.3f}" if counted else "n/a",
            "logged s / step (median over seeds)": f"{np.median(medians):.3g}" if medians else "n/a",
            "range over seeds": _range(medians),
            "10th–90th pct of intervals": (f"{np.percentile(pooled, 10):.3g}–{np.percentile(pooled, 90):.3g}"
                                           if pooled.size else "n/a"),
            "runs": f"{len(runs)} of {len(per_seed)}",
        })
    return pd.DataFrame(rows)


def training_cost_section(outputs: RunOutputs) -> list[Section]:
    """The cost table: FLOPs of the baseline's and AGM's step at this run's sizes, logged times with their spread."""
    counted = (outputs.cost or {}).get("flops_per_image", {})
    flops = {m: float(f) for m, f in counted.items() if m in outputs.models}
    cost = training_cost(flops, analysis.logged_step_times({m: outputs.curves[m] for m in outputs.models}))
    ratio = f"{flops['agm'] / flops['baseline']:.3f}" if {"baseline", "agm"} <= set(flops) else "n/a"
    text = (f"AGM's step costs {ratio} × the baseline's in FLOPs per training image (V's forward and backward on "
            "x_t and the negatives, and its forward for the weights, beside f's): torch.utils.flop_counter over one "
            "step at this run's sizes, which no machine load changes. The wall-clock columns are the runs' logged "
            "seconds per step with their spread over seeds and logging intervals, for orientation only: runs that "
            "shared the machine with other work are slower, so they are not compared as a ratio "
            "(tools.benchmark times the steps interleaved on an idle machine; docs/benchmark.md).")
    return [Section("Training cost", text, table_md=tables.to_markdown(cost), table_html=tables.to_html(cost))]
