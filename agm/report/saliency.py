"""Fig. 5 (paper §6.5): the trained potential's saliency on bridge samples, as data and as a figure.

For the first ``n`` real training images x1 and each t in :data:`SALIENCY_TIMES`, a bridge sample x_t (Eq. 6)
and its saliency S(x_t)[h, w] = Σ_c |∂V_φ(x_t)/∂x_t[c, h, w]| (:mod:`agm.math.saliency`). The `saliency` stage
writes three files, which the report only reads:

- ``fig5_saliency.png``: x_t beside S(x_t) / max S per image and t;
- ``fig5_saliency.csv``: one row per (t, image): the mean and maximum of S, and the share of S in the central
  half of the image (the pixels a digit occupies), so Fig. 5 can be compared across runs as numbers;
- ``fig5_saliency.npz``: the arrays drawn (``x_t_<t>``, ``saliency_<t>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from agm.io.atomic import atomic_path
from agm.io.data import to_model_range
from agm.math.saliency import saliency_at_times
from agm.models.files import load_potential
from agm.report.figures import save_figure

SALIENCY_TIMES = (0.1, 0.5, 0.9)
"""The bridge times of Fig. 5."""

FIGURE, TABLE, ARRAYS = "fig5_saliency.png", "fig5_saliency.csv", "fig5_saliency.npz"


def saliency_panels(model: str | os.PathLike[str], real: np.ndarray, sigma_max: float, schedule: str,
                    seed: int, n: int = 4) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray]]:
    """Bridge samples x_t of the first ``n`` real images (uint8) at t in SALIENCY_TIMES and |∇ₓV(x_t)|.

    Returns (t → (n, C, H, W), t → (n, H, W)) arrays, x0 and ε drawn from a generator seeded with ``seed``.
    """
    potential = load_potential(model)
    x1 = to_model_range(torch.from_numpy(np.asarray(real[:n])))
    x_t, saliency = saliency_at_times(potential, x1, SALIENCY_TIMES, sigma_max, torch.Generator().manual_seed(seed),
                                      schedule)
    return {t: v.numpy() for t, v in x_t.items()}, {t: v.numpy() for t, v in saliency.items()}


def saliency_table(saliency: dict[float, np.ndarray]) -> pd.DataFrame:
    """One row per (t, image): mean and max of S, and the share of ΣS in the central half of the image."""
    rows = []
    for t in sorted(saliency):
        for i, s in enumerate(np.asarray(saliency[t], dtype=np.float64)):
            h, w = s.shape
            centre = s[h // 4: h - h // 4, w // 4: w - w // 4].sum()
            total = s.sum()
            rows.append({"t": t, "image": i, "saliency_mean": s.mean(), "saliency_max": s.max(),
                         "centre_share": centre / total if total > 0 else float("nan")})
    return pd.DataFrame(rows)


def _to_display(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) float in ~[-1, 1] -> (H, W) or (H, W, 3) in [0, 1], and the colormap to use."""
    x = (np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    if x.shape[0] == 1:
        return x[0], "gray"
    return x.transpose(1, 2, 0), None


def plot_saliency(x_t: dict[float, np.ndarray], saliency: dict[float, np.ndarray],
                  path: str | os.PathLike[str]) -> None:
    """Fig. 5: bridge samples x_t beside the saliency |∇ₓV(x_t)| of the potential, per time t.

    The layout has one row per image and, for each t (ascending), two columns: x_t (clipped to
    [-1, 1], shown as grey or RGB) and its saliency heat map ("inferno"), each map divided by its
    own maximum so that only the spatial pattern is compared.

    Args:
        x_t: t -> (n, C, H, W) float bridge samples, roughly in [-1, 1]; C = 1 or 3.
        saliency: t -> (n, H, W) non-negative |∇ₓV|, already reduced over channels.
        path: output PNG.
    """
    times = sorted(x_t)
    if not times or sorted(saliency) != times:
        raise ValueError(f"x_t and saliency need the same non-empty times, got {times}, {sorted(saliency)}")
    n = x_t[times[0]].shape[0]
    for t in times:
        xs, ss = np.asarray(x_t[t]), np.asarray(saliency[t])
        if xs.ndim != 4 or xs.shape[0] != n or ss.shape != (n, *xs.shape[2:]):
            raise ValueError(f"t = {t}: x_t must be (n={n}, C, H, W) and saliency (n, H, W); "
                             f"got {xs.shape} and {ss.shape}")
    cols = 2 * len(times)
    fig = Figure(figsize=(1.6 * cols, 1.6 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)
    for j, t in enumerate(times):
        for i in range(n):
            image, cmap = _to_display(x_t[t][i])
            s = np.asarray(saliency[t][i], dtype=np.float64)
            peak = s.max()
            s = s / peak if peak > 0 else np.zeros_like(s)
            ax_x, ax_s = axes[i, 2 * j], axes[i, 2 * j + 1]
            ax_x.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax_s.imshow(s, cmap="inferno", vmin=0.0, vmax=1.0, interpolation="nearest")
            for ax in (ax_x, ax_s):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 2 * j].set_title(f"t = {t:g}\n$x_t$", fontsize=9)
        axes[0, 2 * j + 1].set_title(f"t = {t:g}\n$|\\nabla_x V|$ / max", fontsize=9)
    save_figure(fig, path)


def write_saliency(model: str | os.PathLike[str], real: np.ndarray, sigma_max: float, schedule: str, seed: int,
                   out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Fig. 5 of ``model``'s potential into ``out_dir`` (the PNG, its table and its arrays); returns the table."""
    out = Path(out_dir)
    x_t, saliency = saliency_panels(model, real, sigma_max, schedule, seed)
    plot_saliency(x_t, saliency, out / FIGURE)
    table = saliency_table(saliency)
    with atomic_path(out / TABLE) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out / ARRAYS) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f"x_t_{t:g}": x_t[t] for t in x_t}, **{f"saliency_{t:g}": saliency[t] for t in saliency})
    return table
