"""Tests for agm.report.figures: every figure is a valid, non-blank PNG; grid sizes are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agm.report.figures import (
    plot_metric_vs_steps,
    plot_sample_comparison,
    plot_training_curves,
    plot_weight_stats,
)
from agm.report.saliency import plot_saliency


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _uint8_images(n: int, c: int, h: int, w: int) -> np.ndarray:
    return _rng().integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def _assert_figure_png(path: Path, min_side: int = 200) -> Image.Image:
    """A readable PNG, reasonably large, with more than a few distinct colours."""
    with Image.open(path) as image:
        image.verify()
    image = Image.open(path)
    assert image.format == "PNG"
    assert image.mode in ("RGB", "RGBA")
    assert min(image.size) >= min_side
    rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(np.uint32)
    colours = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
    assert colours.size > 20, "figure looks blank"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "temporary file left behind"
    return image


# --- Fig. 3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_plot_sample_comparison(tmp_path: Path, c: int) -> None:
    real = _uint8_images(80, c, 16, 16)
    samples = {
        "baseline": _uint8_images(70, c, 16, 16),
        "agm": _uint8_images(10, c, 16, 16),
    }
    path = tmp_path / "fig3.png"
    plot_sample_comparison(real, samples, path, n=64, title="real vs samples")
    width, height = _assert_figure_png(path).size
    assert width > 2 * height, "three panels should sit side by side"


# --- Fig. 4 -----------------------------------------------------------------------------------


def _curve(steps: int, with_potential: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    step = np.arange(0, steps * 100, 100)
    drift = 1.5 * np.exp(-step / 5000) + 0.05 + 0.01 * rng.random(steps)
    df = pd.DataFrame({"step": step, "drift_loss": drift})
    if with_potential:
        df["potential_loss"] = 0.2 + 2.0 * np.exp(-step / 300) + 0.02 * rng.standard_normal(steps)
    return df


@pytest.mark.parametrize("steps", [5, 500])
def test_plot_training_curves(tmp_path: Path, steps: int) -> None:
    curves = {"baseline": _curve(steps, False, 0), "agm": _curve(steps, True, 1)}
    path = tmp_path / "fig4.png"
    plot_training_curves(curves, path)
    _assert_figure_png(path)


def test_plot_training_curves_without_potential(tmp_path: Path) -> None:
    path = tmp_path / "fig4.png"
    plot_training_curves({"baseline": _curve(100, False, 0)}, path)
    _assert_figure_png(path)


# --- Fig. 5 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_plot_saliency(tmp_path: Path, c: int) -> None:
    rng = _rng()
    times = (0.1, 0.5, 0.9)
    x_t = {t: 1.3 * rng.standard_normal((2, c, 16, 16)) for t in times}
    saliency = {t: np.abs(rng.standard_normal((2, 16, 16))) for t in times}
    saliency[0.9][1] = 0.0  # an all-zero map must not divide by zero
    path = tmp_path / "fig5.png"
    plot_saliency(x_t, saliency, path)
    width, height = _assert_figure_png(path).size
    assert width > 2 * height, "two rows, six columns"


def test_plot_saliency_rejects_mismatched_shapes(tmp_path: Path) -> None:
    x_t = {0.5: np.zeros((2, 1, 8, 8))}
    with pytest.raises(ValueError, match="saliency"):
        plot_saliency(x_t, {0.5: np.zeros((3, 8, 8))}, tmp_path / "fig5.png")
    with pytest.raises(ValueError, match="same non-empty times"):
        plot_saliency(x_t, {0.1: np.zeros((2, 8, 8))}, tmp_path / "fig5.png")


# --- metric vs steps, weights -------------------------------------------------------------------


@pytest.mark.parametrize("with_ci", [False, True])
def test_plot_metric_vs_steps(tmp_path: Path, with_ci: bool) -> None:
    steps = [100, 200, 300, 400]
    df = pd.DataFrame(
        {
            "model": ["baseline"] * 4 + ["agm"] * 4,
            "step": steps * 2,
            "fd": [40.0, 33.0, 30.0, 28.5, 38.0, 30.0, 27.0, 25.5],
        }
    )
    if with_ci:
        df["fd_ci"] = 1.0
    path = tmp_path / "fd.png"
    plot_metric_vs_steps(df, "fd", path, target=28.5, target_label="baseline @ 400")
    _assert_figure_png(path)


def test_plot_metric_vs_steps_requires_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        plot_metric_vs_steps(pd.DataFrame({"model": [], "step": []}), "fd", tmp_path / "x.png")


@pytest.mark.parametrize("with_std", [False, True])
def test_plot_weight_stats(tmp_path: Path, with_std: bool) -> None:
    step = np.arange(0, 1000, 10)
    mean = 1.0 + 0.01 * np.sin(step / 100)
    df = pd.DataFrame({"step": step, "w_min": mean - 0.05, "w_mean": mean, "w_max": mean + 0.08})
    if with_std:
        df["w_std"] = 0.02
    path = tmp_path / "weights.png"
    plot_weight_stats({"agm": df}, path)
    _assert_figure_png(path)


def test_plot_weight_by_time(tmp_path: Path) -> None:
    from agm.report.figures import plot_weight_by_time

    plot_weight_by_time([0.9, 1.0, 1.1], tmp_path / "w.png")
    with Image.open(tmp_path / "w.png") as im:
        assert im.format == "PNG" and im.size[0] > 200
    with pytest.raises(ValueError, match="non-empty"):
        plot_weight_by_time([], tmp_path / "x.png")


def test_figures_draw_nan_and_zero_without_raising(tmp_path: Path) -> None:
    from agm.report.figures import plot_weight_by_time, plot_weight_diagnostics

    nan = float("nan")
    steps = pd.DataFrame({"model": ["baseline", "baseline", "agm", "agm"], "step": [200, 400, 200, 400],
                          "fd": [nan, 30.0, nan, nan], "fd_ci": [nan] * 4})
    plot_metric_vs_steps(steps, "fd", tmp_path / "steps.png", target=nan, target_label="baseline, final")
    curve = pd.DataFrame({"step": [1, 2, 3], "drift_loss": [nan, 0.0, 1.0], "potential_loss": [nan] * 3,
                          "w_min": [nan] * 3, "w_mean": [nan] * 3, "w_max": [nan] * 3, "w_ess": [nan, 0.0, 1.0],
                          "w_ratio": [0.0, nan, 2.0]})
    plot_training_curves({"agm": curve}, tmp_path / "curves.png")
    plot_weight_stats({"agm": curve}, tmp_path / "weights.png")
    plot_weight_diagnostics({"agm": curve}, tmp_path / "diagnostics.png")
    plot_weight_by_time([nan, 0.0, 3.0], tmp_path / "by_time.png")
    plot_saliency({0.5: np.full((1, 1, 8, 8), nan)}, {0.5: np.full((1, 8, 8), nan)}, tmp_path / "saliency.png")
    for name in ("steps", "curves", "weights", "diagnostics", "by_time", "saliency"):
        with Image.open(tmp_path / f"{name}.png") as image:
            image.verify()
