"""Figures of the paper's §6 as pure rendering functions over plain arrays and DataFrames.

Each function takes data and an output path, draws one PNG and writes it atomically through
:mod:`agm.io.atomic`. Nothing here knows about models, checkpoints or the pipeline's file layout.

- :func:`plot_sample_comparison`: Fig. 3, real images beside uncurated samples of each model.
- :func:`plot_training_curves`: Fig. 4, drift loss (log scale) over potential loss (linear).
- :func:`plot_metric_vs_steps`: a checkpoint metric (e.g. FD) against training steps.
- :func:`plot_weight_stats`: min / mean / max of the importance weights w_i during training.
- :func:`plot_weight_by_time`: a model's mean importance weight per t-bin.

Fig. 5 (the potential's saliency) is drawn by :mod:`agm.report.saliency`, its own stage's module.
The numbers drawn are computed by the caller (see :mod:`agm.report.analysis`); the only computation
here is the trend line of a long curve, :func:`agm.report.analysis.ewm_smooth`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from agm.io.atomic import atomic_path
from agm.io.image_grid import check_uint8_nchw, image_grid
from agm.report.analysis import ewm_smooth

PathLike = str | os.PathLike[str]

_DPI = 150

TREND_SPAN_DIVISOR = 50
"""Trend lines of long curves: an EWM with a span of ~2 % of the curve (len // 50, at least 2)."""


def save_figure(fig: Figure, path: PathLike) -> None:
    """Render with the Agg canvas (chosen by format="png"); no pyplot, so no global state."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")


def _colors() -> list[str]:
    return mpl.rcParams["axes.prop_cycle"].by_key()["color"]


def _show_grid(ax: Axes, grid: np.ndarray) -> None:
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_sample_comparison(
    real: np.ndarray,
    samples: dict[str, np.ndarray],
    path: PathLike,
    n: int = 64,
    title: str | None = None,
) -> None:
    """Fig. 3: real images and uncurated samples of each model, as grids side by side.

    Each panel shows the first ``n`` images (no selection) in a square-ish grid.

    Args:
        real: (N, C, H, W) uint8 real images; the first panel, titled "real".
        samples: model name -> (N_m, C, H, W) uint8 samples; one panel each, in dict order.
        path: output PNG.
        n: images per panel (fewer if an array holds fewer).
        title: optional figure title.
    """
    panels = {"real": real, **samples}
    nrow = max(1, math.ceil(math.sqrt(n)))
    grids = {
        name: image_grid(check_uint8_nchw(images, name)[:n], nrow=nrow)
        for name, images in panels.items()
    }
    fig = Figure(figsize=(4 * len(grids), 4.4), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)
    for ax, (name, grid) in zip(axes[0], grids.items(), strict=True):
        _show_grid(ax, grid)
        ax.set_title(name)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def _draw_curve(ax: Axes, steps: pd.Series, values: pd.Series, label: str, color: str) -> None:
    if len(values) >= 20:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        trend = ewm_smooth(values, span=max(2, len(values) // TREND_SPAN_DIVISOR))
        ax.plot(steps, trend, color=color, linewidth=1.5, label=label)
    else:
        ax.plot(steps, values, color=color, linewidth=1.5, marker=".", label=label)


def plot_training_curves(curves: dict[str, pd.DataFrame], path: PathLike) -> None:
    """Fig. 4: drift loss L_f of every model (top, log y) and potential loss L_V (bottom, linear).

    Long curves are drawn faint with an exponential moving average on top. A model without a
    ``potential_loss`` column (or with only NaN there, e.g. the λ = 0 baseline) is left out of
    the bottom panel; if no model has one, the bottom panel says so.

    Args:
        curves: model name -> DataFrame with columns ``step``, ``drift_loss`` and optionally
            ``potential_loss``.
        path: output PNG.
    """
    if not curves:
        raise ValueError("curves is empty")
    fig = Figure(figsize=(7, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    colors = _colors()
    any_potential = False
    for k, (name, df) in enumerate(curves.items()):
        df = df.sort_values("step")
        color = colors[k % len(colors)]
        drift = df["drift_loss"].where(df["drift_loss"] > 0)  # log scale: drop non-positive
        _draw_curve(top, df["step"], drift, name, color)
        if "potential_loss" in df and df["potential_loss"].notna().any():
            any_potential = True
            _draw_curve(bottom, df["step"], df["potential_loss"], name, color)
    top.set_yscale("log")
    top.set_ylabel("drift loss $L_f$")
    top.set_title("drift loss (log scale)")
    top.legend()
    top.grid(True, which="both", alpha=0.3)
    bottom.set_ylabel("potential loss $L_V$")
    bottom.set_title("potential loss")
    bottom.set_xlabel("training step")
    bottom.grid(True, alpha=0.3)
    if any_potential:
        bottom.legend()
    else:
        bottom.text(
            0.5,
            0.5,
            "no model has a potential loss",
            ha="center",
            va="center",
            transform=bottom.transAxes,
            color="gray",
        )
    save_figure(fig, path)


def plot_metric_vs_steps(
    df: pd.DataFrame,
    metric: str,
    path: PathLike,
    target: float | None = None,
    target_label: str = "",
) -> None:
    """A checkpoint metric against training steps, one line per model.

    Args:
        df: long table with columns ``model``, ``step``, ``metric`` and optionally
            ``f"{metric}_ci"`` (half-width of a confidence interval, drawn as error bars).
        metric: name of the value column, also the y label.
        path: output PNG.
        target: optional level drawn as a horizontal dashed line (e.g. the baseline's final FD).
        target_label: legend label of the target line.
    """
    missing = {"model", "step", metric} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks columns {sorted(missing)}")
    ci_col = f"{metric}_ci"
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name, group in df.groupby("model", sort=False):
        group = group.sort_values("step")
        yerr = group.get(ci_col)
        ax.errorbar(
            group["step"],
            group[metric],
            yerr=yerr,
            marker="o",
            capsize=3,
            label=str(name),
        )
    if target is not None:
        ax.axhline(
            target,
            color="gray",
            linestyle="--",
            linewidth=1,
            label=target_label or None,
        )
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_weight_stats(curves: dict[str, pd.DataFrame], path: PathLike) -> None:
    """Importance weights w_i (docs/spec.md §3) during training: a min..max band and the mean per model.

    The dashed line marks w = 1, the value every weight takes at λ = 0.

    Args:
        curves: model name -> DataFrame with columns ``step``, ``w_min``, ``w_mean``, ``w_max``
            and optionally ``w_std`` (drawn as a dotted mean ± std pair).
        path: output PNG.
    """
    if not curves:
        raise ValueError("curves is empty")
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    colors = _colors()
    for k, (name, df) in enumerate(curves.items()):
        df = df.sort_values("step")
        color = colors[k % len(colors)]
        ax.fill_between(df["step"], df["w_min"], df["w_max"], color=color, alpha=0.2, linewidth=0)
        ax.plot(
            df["step"],
            df["w_mean"],
            color=color,
            linewidth=1.5,
            label=f"{name} (mean, min..max)",
        )
        if "w_std" in df:
            for sign in (-1, 1):
                ax.plot(
                    df["step"],
                    df["w_mean"] + sign * df["w_std"],
                    color=color,
                    linewidth=0.8,
                    linestyle=":",
                )
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("importance weight $w_i$")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_weight_diagnostics(curves: dict[str, pd.DataFrame], path: PathLike) -> None:
    """The effective sample size fraction (Σw)² / (B Σw²) and the ratio max w / min w during training.

    Args:
        curves: model name -> DataFrame with columns ``step``, ``w_ess``, ``w_ratio``.
        path: output PNG.
    """
    if not curves:
        raise ValueError("curves is empty")
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax_ess, ax_ratio = fig.subplots(2, 1, sharex=True)
    for (name, df), color in zip(curves.items(), _colors(), strict=False):
        df = df.sort_values("step")
        ax_ess.plot(df["step"], df["w_ess"], color=color, label=name)
        ax_ratio.plot(df["step"], df["w_ratio"], color=color, label=name)
    ax_ess.set_ylabel("effective sample size / B")
    ax_ratio.set_ylabel("max w / min w")
    ax_ratio.set_yscale("log")
    ax_ratio.set_xlabel("training step")
    for ax in (ax_ess, ax_ratio):
        ax.grid(True, alpha=0.3)
    ax_ess.legend()
    save_figure(fig, path)


def plot_weight_by_time(weights: Sequence[float], path: PathLike) -> None:
    """A model's mean importance weight per t-bin (bins of equal width over [0, 1]) as a step curve.

    Args:
        weights: W_k for bins k = 0..K-1 (agm.math.time_bins), unit mean over bins.
        path: output PNG.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {w.shape}")
    edges = np.linspace(0.0, 1.0, w.size + 1)
    fig = Figure(figsize=(7, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.stairs(w, edges, linewidth=1.5)
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("t (0 = noise, 1 = data)")
    ax.set_ylabel("mean weight / overall mean")
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)
