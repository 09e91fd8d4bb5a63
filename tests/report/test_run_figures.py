"""agm.report.run_figures: each figure beside the data it was drawn from, and a manifest of what was drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from agm.report import analysis
from agm.report.run_figures import MANIFEST, FigureInputs, render_figures


def _inputs(grids_missing: bool = False, steps_missing: bool = False) -> FigureInputs:
    rng = np.random.default_rng(0)
    step = np.arange(10, 110, 10)
    curves = {
        "baseline": [pd.DataFrame({"step": step, "drift_loss": 1.0 / step}) for _ in range(2)],
        "agm": [pd.DataFrame({"step": step, "drift_loss": 0.9 / step, "potential_loss": 0.5 + 0 * step,
                              "w_min": 0.5, "w_mean": 1.0, "w_max": 2.0}) for _ in range(2)],
    }
    frame = pd.DataFrame({"step": [50, 100], "fd_digits": [3.0, 2.0]})
    steps = {"baseline": [frame, frame + [0, 1]], "agm": [frame - [0, 1], None if steps_missing else frame]}
    grid = rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8)
    return FigureInputs(models=["baseline", "agm"], seeds=[0, 1], dist="fd_digits",
                        real=rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8),
                        grids={"baseline": None if grids_missing else grid, "agm": grid}, curves=curves, steps=steps,
                        time_weights=(0.5, 1.0, 1.5))


def test_every_figure_is_written_with_the_data_it_shows(tmp_path: Path) -> None:
    inputs = _inputs()
    drawn = render_figures(inputs, tmp_path, {"baseline": "samples/baseline/s0/grid.npy", "agm": "g.npy"})
    assert json.loads((tmp_path / MANIFEST).read_text()) == drawn
    for entry in drawn.values():
        assert (tmp_path / entry["png"]).stat().st_size > 0
    assert drawn["fig3_samples"]["data"] == {"baseline": "samples/baseline/s0/grid.npy", "agm": "g.npy"}
    curves = pd.read_csv(tmp_path / "fig4_training_curves.csv")
    assert list(curves.columns) == ["model", "step", "drift_loss", "potential_loss"]
    np.testing.assert_allclose(curves.loc[curves.model == "agm", "drift_loss"], 0.9 / np.arange(10, 110, 10),
                               rtol=1e-5)  # written to 6 significant digits
    steps = pd.read_csv(tmp_path / "metric_vs_steps.csv")
    expected = analysis.compare_steps(inputs.steps, "fd_digits").curves.reset_index(drop=True)
    pd.testing.assert_frame_equal(steps, expected, check_dtype=False, rtol=1e-5)
    by_time = pd.read_csv(tmp_path / "weight_by_time.csv")
    assert by_time.weight.tolist() == [0.5, 1.0, 1.5] and by_time.t_hi.iloc[-1] == 1.0
    assert drawn["weight_by_time"]["bins"] == 3
    weights = pd.read_csv(tmp_path / "weight_stats.csv")
    assert set(weights.model) == {"agm"} and {"w_min", "w_mean", "w_max"} <= set(weights.columns)


def test_what_cannot_be_drawn_is_named_in_the_manifest(tmp_path: Path) -> None:
    drawn = render_figures(_inputs(grids_missing=True, steps_missing=True), tmp_path, {"baseline": "", "agm": ""})
    assert drawn["fig3_samples"]["missing"] == ["baseline"]
    assert drawn["metric_vs_steps"] == {"skipped": "a baseline or AGM seed has no metric-vs-steps curve"}
    assert not (tmp_path / "metric_vs_steps.png").exists()
