"""Assemble the report page from the pipeline's outputs: Figs. 3-5, Table 3, metric vs steps.

Everything here reads finished stage outputs (metrics JSON, dvclive logs, sample grids, the trained
potential) and hands plain arrays to :mod:`agm.report.figures`, :mod:`agm.report.tables` and
:mod:`agm.report.page`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agm.checkpoint import load_potential
from agm.metrics.spaces import DESCRIPTIONS, DISTANCE_NAMES
from agm.report import figures, tables
from agm.report.page import ReportFiles, Section, write_report
from agm.saliency import bridge_at, potential_saliency

SALIENCY_TIMES = (0.1, 0.5, 0.9)


def read_live_curves(live_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """The dvclive scalars of one training run as one frame indexed by step (columns: metric names)."""
    folder = Path(live_dir) / "plots" / "metrics" / "train"
    frames = [pd.read_csv(f, sep="\t").set_index("step")[[f.stem]] for f in sorted(folder.glob("*.tsv"))]
    if not frames:
        raise FileNotFoundError(f"no dvclive curves under {folder}")
    return pd.concat(frames, axis=1).reset_index()


def saliency_panels(model: str | os.PathLike[str], real: np.ndarray, sigma_max: float, schedule: str,
                    seed: int, n: int = 4) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray]]:
    """Bridge samples x_t of ``n`` real images at t in SALIENCY_TIMES and |∇ₓV(x_t)| (Fig. 5)."""
    V = load_potential(model)
    x1 = torch.from_numpy(np.asarray(real[:n])).float() / 127.5 - 1.0
    gen = torch.Generator().manual_seed(seed)
    xs, sal = {}, {}
    for t in SALIENCY_TIMES:
        x_t = bridge_at(x1, t, sigma_max, gen, schedule)
        xs[t], sal[t] = x_t.numpy(), potential_saliency(V, x_t).numpy()
    return xs, sal


def build_report(
    *, out_dir: Path, params: dict[str, Any], git_rev: str, profile: str, models: Sequence[str],
    real: np.ndarray, grids: dict[str, np.ndarray], curves: dict[str, pd.DataFrame],
    metrics: dict[str, list[dict[str, Any]]], features_metrics: dict[str, Any],
    steps: dict[str, pd.DataFrame], agm_model: Path | None,
) -> ReportFiles:
    """Render every figure into ``out_dir`` and write report.md / report.html.

    Args:
        models: model names, "baseline" and "agm" first.
        real: real training images, uint8 (N, C, H, W).
        grids: model → uint8 sample grid (Fig. 3).
        curves: model → dvclive curves (step, drift_loss, potential_loss, w_*).
        metrics: model → per-seed metrics dicts (the evaluate stage's JSON).
        features_metrics: the features stage's JSON (feature space, classifier accuracy, real vs real).
        steps: model → metric-vs-steps frame (step, distance column, precision, recall).
        agm_model: model.pt of the AGM run, for the saliency of its potential (None: no Fig. 5).
    """
    space = features_metrics["feature_space"]
    dist = DISTANCE_NAMES[space]
    dist_title = "FID (Inception-v3)" if space == "inception" else "FD (digit-classifier features)"
    fig = out_dir / "figures"
    sections: list[Section] = []

    figures.plot_sample_comparison(real[: len(next(iter(grids.values())))], grids, fig / "fig3_samples.png",
                                   title="Real images and uncurated samples (same noise for every model)")
    sections.append(Section(
        "Fig. 3 — samples", f"Uncurated samples at NFE {params['sample']['grid_nfe']} with a fixed seed, "
        "beside real training images.", image="figures/fig3_samples.png"))

    figures.plot_training_curves({m: curves[m] for m in models}, fig / "fig4_training_curves.png")
    sections.append(Section(
        "Fig. 4 — training curves", "Top: (weighted) drift loss L_f on a log scale, every model overlaid. "
        "Bottom: the potential loss L_V (AGM only).", image="figures/fig4_training_curves.png"))

    if agm_model is not None:
        xs, sal = saliency_panels(agm_model, real, params["bridge"]["sigma_max"], params["bridge"]["schedule"],
                                  params["seed"])
        figures.plot_saliency(xs, sal, fig / "fig5_saliency.png")
        sections.append(Section(
            "Fig. 5 — saliency of the potential", "|∇ₓV(x_t)| of the trained potential on bridge samples of "
            "real images at t = 0.1, 0.5, 0.9 (each map scaled to its own maximum).",
            image="figures/fig5_saliency.png"))

    reproduced = {m: {"distance": [r[dist] for r in metrics[m]], "precision": [r["precision"] for r in metrics[m]],
                      "recall": [r["recall"] for r in metrics[m]]} for m in models}
    t3 = tables.table3(reproduced, dist_title)
    n_samples = metrics["agm"][0]["n_samples"]
    rr = features_metrics["real_vs_real"]
    text = (f"Reproduced with the **{profile}** profile, {n_samples} samples per model, feature space: "
            f"{DESCRIPTIONS[space]}. Real-vs-real reference (held-out vs training images): "
            f"{dist} = {rr[dist]:.3f}, precision = {rr['precision']:.3f}, recall = {rr['recall']:.3f}.")
    if "classifier_heldout_accuracy" in features_metrics:
        text += f" The classifier's held-out accuracy is {features_metrics['classifier_heldout_accuracy']:.3f}."
    sections.append(Section("Table 3 — reproduced", text, table_md=tables.to_markdown(t3),
                            table_html=tables.to_html(t3)))
    pt3 = tables.paper_table3()
    sections.append(Section("Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)",
                            "The paper's numbers, for comparison of the direction and size of the change; "
                            "absolute values are not comparable across feature spaces or profiles.",
                            table_md=tables.to_markdown(pt3), table_html=tables.to_html(pt3)))

    if all(m in steps and len(steps[m]) for m in ("baseline", "agm")):
        long = pd.concat([steps[m].assign(model=m) for m in models if m in steps], ignore_index=True)
        base_final = float(steps["baseline"].sort_values("step")[dist].iloc[-1])
        figures.plot_metric_vs_steps(long, dist, fig / "metric_vs_steps.png", target=base_final,
                                     target_label="baseline, final")
        reach = figures.first_step_reaching(steps["agm"]["step"].tolist(), steps["agm"][dist].tolist(),
                                            base_final, lower_is_better=True)
        total = int(steps["baseline"]["step"].max())
        claim = (f"AGM first reaches the baseline's final {dist} ({base_final:.3f}) at step {reach} of {total} "
                 f"({100 * reach / total:.0f}% of the steps)." if reach is not None else
                 f"AGM never reaches the baseline's final {dist} ({base_final:.3f}) within {total} steps.")
        sections.append(Section(
            "Metric vs training steps", f"The EMA snapshots evaluated with {params['eval']['snapshot_samples']} "
            f"samples each. The paper claims AGM at ≈70% of the steps matches the baseline at 100%. {claim}",
            image="figures/metric_vs_steps.png"))

    weighted = {m: curves[m] for m in models if "w_mean" in curves[m]}
    if weighted:
        figures.plot_weight_stats(weighted, fig / "weight_stats.png")
        corr = {m: float(c["w_t_corr"].mean()) for m, c in weighted.items() if "w_t_corr" in c}
        sections.append(Section(
            "Importance weights", "Min / mean / max of w per logged step. Mean correlation of w with t over a "
            "batch: " + ", ".join(f"{m}: {v:+.3f}" for m, v in corr.items()) + ".",
            image="figures/weight_stats.png"))

    return write_report(out_dir, title="AGM reproduction report", sections=sections, params=params,
                        git_rev=git_rev, profile=profile)


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
