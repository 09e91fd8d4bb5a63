"""The figures of one pipeline run, each PNG beside the data it was drawn from (the `figures` stage).

The report only reads what this writes (figures.json says which figures were drawn and why any was not):

    fig3_samples.png            Fig. 3: real training images beside each model's uncurated grid (first seed);
                                its data are the grids, samples/<model>/s<seed>/grid.npy (figures.json names them)
    fig4_training_curves.png    Fig. 4: the first seed's drift loss of every drift model and the potential loss
      + .csv                    (model, step, and each logged loss)
    metric_vs_steps.png + .csv  the distance at every EMA snapshot, mean and 95% half-width over seeds, baseline
                                and AGM, with the baseline's final value as the target line
    weight_stats.png + .csv     min / mean / max of the importance weights per logged step (first seed), and the
    weight_diagnostics.png      effective sample size, max/min ratio and share at the clamp where logged
    weight_by_time.png + .csv   AGM's mean weight per t-bin (first seed): the time_only control's table
    no_detach_curves.png,       AGM without the stop-gradient beside AGM (first seed; their rows of
    no_detach_weights.png       fig4_training_curves.csv and weight_stats.csv are the data)

Fig. 5 (saliency of the potential) is its own stage (agm.report.saliency): it needs the model, these need logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agm.io.atomic import atomic_path, write_json
from agm.report import analysis, figures

MANIFEST = "figures.json"


@dataclass(frozen=True)
class FigureInputs:
    """What the figures are drawn from, loaded (None: a missing output, the figure or its seed is skipped).

    Attributes:
        models: "baseline" and "agm" first, then any controls.
        seeds: the training seeds; per-seed lists follow this order.
        dist: the distance's key in the steps CSVs (e.g. "fd_digits").
        real: real training images, uint8 (N, C, H, W).
        grids: model -> the first seed's uint8 sample grid.
        curves: model -> per-seed dvclive curves (step and the logged scalars).
        steps: "baseline" / "agm" -> per-seed metric-vs-steps frames.
        time_weights: AGM's mean weight per t-bin of the first seed, or None.
    """

    models: Sequence[str]
    seeds: Sequence[int]
    dist: str
    real: np.ndarray
    grids: dict[str, np.ndarray | None]
    curves: dict[str, list[pd.DataFrame | None]]
    steps: dict[str, list[pd.DataFrame | None]]
    time_weights: Sequence[float] | None = None

    def first_curves(self, models: Sequence[str]) -> dict[str, pd.DataFrame]:
        return {m: self.curves[m][0] for m in models if self.curves.get(m) and self.curves[m][0] is not None}


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def _long(curves: dict[str, pd.DataFrame], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """model, step and ``columns`` (default: all) of each model's curve, stacked."""
    frames = [c[["step", *[k for k in c.columns if k != "step" and (columns is None or k in columns)]]]
              .assign(model=m) for m, c in curves.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["model", *[k for k in out.columns if k != "model"]]]


def render_figures(inputs: FigureInputs, out: Path, sample_paths: dict[str, str]) -> dict[str, Any]:
    """Draw every figure the inputs allow into ``out`` with its data; write and return the manifest
    (figure -> {"png", "data", "seed(s)"} or {"skipped": why})."""
    out = Path(out)
    first = inputs.seeds[0]
    drawn: dict[str, Any] = {}

    grids = {m: g for m, g in inputs.grids.items() if g is not None}
    if grids:
        figures.plot_sample_comparison(inputs.real[: len(next(iter(grids.values())))], grids, out / "fig3_samples.png",
                                       title="Real images and uncurated samples (same noise for every model)")
        drawn["fig3_samples"] = {"png": "fig3_samples.png", "data": {m: sample_paths[m] for m in grids},
                                 "seed": first, "missing": sorted(set(inputs.grids) - set(grids))}
    else:
        drawn["fig3_samples"] = {"skipped": f"no sample grid of seed {first}"}

    curves = inputs.first_curves(inputs.models)
    drift = {m: c for m, c in curves.items() if "drift_loss" in c}
    if drift:
        figures.plot_training_curves(drift, out / "fig4_training_curves.png")
        _write_csv(_long(drift, ("drift_loss", "potential_loss")), out / "fig4_training_curves.csv")
        drawn["fig4_training_curves"] = {"png": "fig4_training_curves.png", "data": "fig4_training_curves.csv",
                                         "seed": first, "missing": sorted(set(inputs.models) - set(curves))}
    else:
        drawn["fig4_training_curves"] = {"skipped": f"no drift-loss curve of seed {first}"}

    steps = {m: inputs.steps.get(m) or [] for m in ("baseline", "agm")}
    if all(frames and all(f is not None for f in frames) for frames in steps.values()):
        comparison = analysis.compare_steps(steps, inputs.dist)
        figures.plot_metric_vs_steps(comparison.curves, inputs.dist, out / "metric_vs_steps.png",
                                     target=comparison.baseline_final, target_label="baseline, final")
        _write_csv(comparison.curves, out / "metric_vs_steps.csv")
        drawn["metric_vs_steps"] = {"png": "metric_vs_steps.png", "data": "metric_vs_steps.csv",
                                    "seeds": list(inputs.seeds)}
    else:
        drawn["metric_vs_steps"] = {"skipped": "a baseline or AGM seed has no metric-vs-steps curve"}

    weighted = {m: c for m, c in curves.items() if "w_mean" in c}
    if weighted:
        figures.plot_weight_stats(weighted, out / "weight_stats.png")
        _write_csv(_long(weighted, [k for c in weighted.values() for k in c.columns if k.startswith("w_")]),
                   out / "weight_stats.csv")
        drawn["weight_stats"] = {"png": "weight_stats.png", "data": "weight_stats.csv", "seed": first}
        diagnosed = {m: c for m, c in weighted.items() if "w_ess" in c}
        if diagnosed:
            figures.plot_weight_diagnostics(diagnosed, out / "weight_diagnostics.png")
            drawn["weight_diagnostics"] = {"png": "weight_diagnostics.png", "data": "weight_stats.csv", "seed": first}

    if inputs.time_weights is not None:
        weights = list(inputs.time_weights)
        bins = len(weights)
        figures.plot_weight_by_time(weights, out / "weight_by_time.png")
        _write_csv(pd.DataFrame({"bin": range(bins), "t_lo": [k / bins for k in range(bins)],
                                 "t_hi": [(k + 1) / bins for k in range(bins)], "weight": weights}),
                   out / "weight_by_time.csv")
        drawn["weight_by_time"] = {"png": "weight_by_time.png", "data": "weight_by_time.csv", "seed": first,
                                   "bins": bins}

    if "no_detach" in inputs.models:
        pair = inputs.first_curves(["agm", "no_detach"])
        if len(pair) == 2:
            figures.plot_training_curves(pair, out / "no_detach_curves.png")
            figures.plot_weight_stats(pair, out / "no_detach_weights.png")
            drawn["no_detach_curves"] = {"png": "no_detach_curves.png", "data": "fig4_training_curves.csv"}
            drawn["no_detach_weights"] = {"png": "no_detach_weights.png", "data": "weight_stats.csv"}
        else:
            drawn["no_detach_curves"] = {"skipped": f"agm or no_detach curves of seed {first} missing"}
    write_json(out / MANIFEST, drawn)
    return drawn
