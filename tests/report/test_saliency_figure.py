"""agm.report.saliency: Fig. 5's arrays, its table against closed forms, and the files the saliency stage writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from agm.math.nets import Potential
from agm.models.files import save_model
from agm.report.saliency import ARRAYS, FIGURE, SALIENCY_TIMES, TABLE, saliency_panels, saliency_table, write_saliency

POTENTIAL = dict(in_channels=1, widths=(4, 4, 4), pool=1, groups=2)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(path, ema={}, unet={}, potential=Potential(**POTENTIAL).state_dict(), potential_kwargs=POTENTIAL,
               step=1)
    return path


def test_saliency_panels_shapes(model: Path, one_thread) -> None:
    real = np.random.default_rng(0).integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
    x_t, saliency = saliency_panels(model, real, 0.1, "cosine", seed=0, n=3)
    assert sorted(x_t) == sorted(saliency) == list(SALIENCY_TIMES)
    for t in SALIENCY_TIMES:
        assert x_t[t].shape == (3, 1, 8, 8) and saliency[t].shape == (3, 8, 8)
        assert (saliency[t] >= 0).all()


def test_saliency_table_against_closed_forms() -> None:
    uniform = np.ones((2, 8, 8))  # every pixel alike: the central half of each side holds 16 of 64 pixels
    peaked = np.zeros((1, 8, 8))
    peaked[0, 4, 4] = 3.0  # all of it in the centre
    table = saliency_table({0.5: uniform, 0.1: peaked})
    assert list(table.t) == [0.1, 0.5, 0.5] and list(table.image) == [0, 0, 1]
    assert table.centre_share.tolist() == [1.0, 0.25, 0.25]
    assert table.saliency_mean.tolist() == [3.0 / 64, 1.0, 1.0] and table.saliency_max.tolist() == [3.0, 1.0, 1.0]
    assert np.isnan(saliency_table({0.5: np.zeros((1, 8, 8))}).centre_share[0])


def test_write_saliency_writes_the_figure_and_the_data_it_shows(model: Path, tmp_path: Path, one_thread) -> None:
    real = np.random.default_rng(1).integers(0, 256, (8, 1, 8, 8), dtype=np.uint8)
    out = tmp_path / "out"
    out.mkdir()
    table = write_saliency(model, real, 0.1, "cosine", 0, out)
    assert (out / FIGURE).stat().st_size > 0
    pd.testing.assert_frame_equal(pd.read_csv(out / TABLE), table, rtol=1e-5)
    arrays = np.load(out / ARRAYS)
    _, saliency = saliency_panels(model, real, 0.1, "cosine", seed=0)
    for t in SALIENCY_TIMES:
        np.testing.assert_array_equal(arrays[f"saliency_{t:g}"], saliency[t])
