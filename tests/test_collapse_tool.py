"""tools.collapse: the report's collapse rule applied per seed to workspaces' dvclive curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tools.collapse import collapse_rows, seed_curves


def _write_live(folder: Path, steps: np.ndarray, drift: np.ndarray, potential: np.ndarray) -> None:
    train = folder / "plots" / "metrics" / "train"
    train.mkdir(parents=True)
    for key, values in (("drift_loss", drift), ("potential_loss", potential)):
        pd.DataFrame({"step": steps, key: values}).to_csv(train / f"{key}.tsv", sep="\t", index=False)


def test_a_drift_loss_that_triples_at_a_known_step_collapses_there_and_an_equal_run_does_not(tmp_path):
    steps = np.arange(0, 2000, 20)
    drift = np.full(len(steps), 0.7)
    potential = np.full(len(steps), 0.5)
    jump = 1000
    blown = np.where(steps >= jump, 3.0 * 0.7, 0.7)  # 3× the reference from `jump` on: above the rule's 2×
    for seed, nd_drift in ((1, drift), (2, blown)):
        _write_live(tmp_path / "live" / "agm" / f"s{seed}", steps, drift, potential)
        _write_live(tmp_path / "live" / "no_detach" / f"s{seed}", steps, nd_drift, potential)
    _write_live(tmp_path / "live" / "agm" / "s3", steps, drift, potential)  # no no_detach run: not a pair

    curves = seed_curves(tmp_path)
    assert sorted(curves) == [1, 2]
    rows = collapse_rows(curves, margin=1.0).set_index("seed")
    assert pd.isna(rows.loc[1, "collapse_step"]) and rows.loc[1, "steps_reached"] == steps[-1]
    # the smoothed ratio crosses 2 a few logged steps after the jump (EWM of span len // 20 = 5 points)
    step = rows.loc[2, "collapse_step"]
    assert jump <= step <= jump + 5 * 20
    assert "2×" in rows.loc[2, "reason"]
    # a mean of at most len(steps) equal doubles: within len(steps) rounding steps of the value
    assert rows.loc[2, "no_detach_drift_loss_last10pct"] == pytest.approx(
        3.0 * rows.loc[2, "agm_drift_loss_last10pct"], rel=len(steps) * np.finfo(float).eps)
    # how far apart the runs ever were: 0 for equal curves; for the jump, the smoothed 3× reaches within the EWM's
    # reach of 2 (|3x − x| / x) by the last step, 900 steps (45 points, 9 spans) after it
    assert rows.loc[1, "max_relative_gap_drift_loss"] == 0.0
    assert rows.loc[2, "max_relative_gap_drift_loss"] == pytest.approx(2.0, rel=1e-3)
    assert rows.loc[2, "max_relative_gap_potential_loss"] == 0.0
