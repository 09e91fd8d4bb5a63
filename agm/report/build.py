"""Assemble the report page from the pipeline's outputs: Figs. 3-5, Table 3, metric vs steps, controls.

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

from agm.metrics.spaces import DESCRIPTIONS, DISTANCE_NAMES
from agm.model_file import load_potential
from agm.report import controls as controls_report
from agm.report import figures, tables
from agm.report.page import ReportFiles, Section, write_report
from agm.saliency import bridge_at, potential_saliency
from agm.time_weighting import TimeWeightTable

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


def _mean_over_seeds(frames: Sequence[pd.DataFrame], dist: str) -> pd.DataFrame:
    """Per-step mean of the metric-vs-steps frames of several seeds, with a 95% half-width column."""
    long = pd.concat(frames, ignore_index=True)
    rows = []
    for step, group in long.groupby("step", sort=True):
        ci = tables.mean_ci(group[dist].tolist())
        rows.append({"step": int(step), dist: ci.mean, f"{dist}_ci": ci.half_width, "n": ci.n})
    return pd.DataFrame(rows)


def build_report(
    *, out_dir: Path, params: dict[str, Any], git_rev: str, profile: str, models: Sequence[str],
    seeds: Sequence[int], real: np.ndarray, grids: dict[str, np.ndarray], curves: dict[str, list[pd.DataFrame]],
    metrics: dict[str, list[dict[str, Any]]], features_metrics: dict[str, Any],
    steps: dict[str, list[pd.DataFrame]], agm_model: Path | None, time_table: TimeWeightTable | None = None,
) -> ReportFiles:
    """Render every figure into ``out_dir`` and write report.md / report.html.

    Args:
        models: model names, "baseline" and "agm" first, then any controls.
        seeds: the training seeds; every per-seed list below follows this order.
        real: real training images, uint8 (N, C, H, W).
        grids: model → uint8 sample grid of the first seed (Fig. 3).
        curves: model → dvclive curves per seed (step, drift_loss or action_loss, potential_loss, w_*).
        metrics: model → per-seed metrics dicts (the evaluate stage's JSON).
        features_metrics: the features stage's JSON (feature space, classifier accuracy, real vs real).
        steps: model → per-seed metric-vs-steps frames (step, distance column, precision, recall).
        agm_model: model.pt of the AGM run of the first seed, for Fig. 5 (None: no Fig. 5).
        time_table: AGM's mean weight per t-bin (first seed), for the weight-vs-t figure.
    """
    space = features_metrics["feature_space"]
    dist = DISTANCE_NAMES[space]
    dist_title = "FID (Inception-v3)" if space == "inception" else "FD (digit-classifier features)"
    fig = out_dir / "figures"
    sections: list[Section] = []
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"

    figures.plot_sample_comparison(real[: len(next(iter(grids.values())))], grids, fig / "fig3_samples.png",
                                   title="Real images and uncurated samples (same noise for every model)")
    sections.append(Section(
        "Fig. 3 — samples", f"Uncurated samples at NFE {params['sample']['grid_nfe']} with a fixed seed "
        f"(training seed {seeds[0]}), beside real training images.", image="figures/fig3_samples.png"))

    drift_models = {m: curves[m][0] for m in models if "drift_loss" in curves[m][0]}
    figures.plot_training_curves(drift_models, fig / "fig4_training_curves.png")
    sections.append(Section(
        "Fig. 4 — training curves", f"Top: (weighted) drift loss L_f on a log scale, every drift model overlaid "
        f"(seed {seeds[0]}). Bottom: the potential loss L_V (models with a V).",
        image="figures/fig4_training_curves.png"))

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
    t3 = tables.table3({m: reproduced[m] for m in ("baseline", "agm")}, dist_title)
    n_samples = metrics["agm"][0]["n_samples"]
    rr = features_metrics["real_vs_real"]
    interval = ("mean ± 95% Student-t interval over " + seed_text) if len(seeds) > 1 else (
        f"one {seed_text}, so no interval (list more in params `seeds`)")
    text = (f"Reproduced with the **{profile}** profile, {n_samples} samples per model, {interval}; feature "
            f"space: {DESCRIPTIONS[space]}. Real-vs-real reference (held-out vs training images): "
            f"{dist} = {rr[dist]:.3f}, precision = {rr['precision']:.3f}, recall = {rr['recall']:.3f}.")
    if "classifier_heldout_accuracy" in features_metrics:
        text += f" The classifier's held-out accuracy is {features_metrics['classifier_heldout_accuracy']:.3f}."
    if len(seeds) > 1:
        text += (" Runs of one seed share f's initialisation and every random draw, so the paired difference "
                 "removes the seed-to-seed spread: " + controls_report.describe_paired(
                     {m: reproduced[m]["distance"] for m in ("baseline", "agm")}, "baseline", dist))
    sections.append(Section("Table 3 — reproduced", text, table_md=tables.to_markdown(t3),
                            table_html=tables.to_html(t3)))
    pt3 = tables.paper_table3()
    sections.append(Section("Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)",
                            "The paper's numbers, for comparison of the direction and size of the change; "
                            "absolute values are not comparable across feature spaces or profiles.",
                            table_md=tables.to_markdown(pt3), table_html=tables.to_html(pt3)))

    controls = [m for m in models if m not in ("baseline", "agm")]
    if controls:
        every = tables.table3(reproduced, dist_title)
        sections.append(Section(
            "Every model — controls beside Table 3", f"The same evaluation for every model, {interval}. "
            "no_detach: AGM without the stop-gradient (paper §4.4); time_only: no V, the loss weighted by AGM's "
            "mean weight at each t; action_matching: a scalar action s(x, t) sampled along ∇ₓs (Neklyudov et "
            "al., 2023). The Δ rows compare AGM with the baseline. " + (controls_report.describe_paired(
                {m: reproduced[m]["distance"] for m in models}, "agm", dist) if len(seeds) > 1 else ""),
            table_md=tables.to_markdown(every), table_html=tables.to_html(every)))

    if all(steps.get(m) for m in ("baseline", "agm")):
        means = {m: _mean_over_seeds(steps[m], dist) for m in ("baseline", "agm")}
        long = pd.concat([means[m].assign(model=m) for m in ("baseline", "agm")], ignore_index=True)
        base_final = float(means["baseline"][dist].iloc[-1])
        figures.plot_metric_vs_steps(long, dist, fig / "metric_vs_steps.png", target=base_final,
                                     target_label="baseline, final")
        reach = figures.first_step_reaching(means["agm"]["step"].tolist(), means["agm"][dist].tolist(),
                                            base_final, lower_is_better=True)
        total = int(means["baseline"]["step"].max())
        claim = (f"AGM first reaches the baseline's final {dist} ({base_final:.3f}) at step {reach} of {total} "
                 f"({100 * reach / total:.0f}% of the steps)." if reach is not None else
                 f"AGM never reaches the baseline's final {dist} ({base_final:.3f}) within {total} steps.")
        sections.append(Section(
            "Metric vs training steps", f"The EMA snapshots evaluated with {params['eval']['snapshot_samples']} "
            f"samples each ({'mean ± 95% interval over ' + seed_text if len(seeds) > 1 else seed_text}). The "
            f"paper claims AGM at ≈70% of the steps matches the baseline at 100%. {claim}",
            image="figures/metric_vs_steps.png"))

    cost = tables.training_cost({m: [c["step_time_s"].dropna().tolist() for c in curves[m]] for m in models})
    sections.append(Section(
        "Training cost", "Wall-clock seconds per training step as each run logged it (the median of its "
        f"logging intervals; {interval}), and the ratio to AGM's step paired by seed. These are times on the "
        "machine that ran the pipeline: runs that shared it with other work are slower.",
        table_md=tables.to_markdown(cost), table_html=tables.to_html(cost)))

    weighted = {m: curves[m][0] for m in models if "w_mean" in curves[m][0]}
    if weighted:
        figures.plot_weight_stats(weighted, fig / "weight_stats.png")
        corr = {m: tables.mean_ci([float(c["w_t_corr"].mean()) for c in curves[m]]) for m in weighted}
        text = (f"Min / mean / max of w per logged step (seed {seeds[0]}). Correlation of w with t over a batch, "
                "averaged over logged steps: " + ", ".join(f"{m}: {v.format(3)}" for m, v in corr.items()) + ".")
        sections.append(Section("Importance weights", text, image="figures/weight_stats.png"))
    if time_table is not None:
        figures.plot_weight_by_time(time_table.weights, fig / "weight_by_time.png")
        sections.append(Section(
            "AGM's weight as a function of t", f"AGM's mean importance weight per t-bin over the whole run "
            f"(seed {seeds[0]}, {time_table.bins} bins, normalised to unit mean over t): the table the time_only "
            "control trains with. A flat line means V's weights carry no time information.",
            image="figures/weight_by_time.png"))

    if "no_detach" in models:
        figures.plot_training_curves({"agm": curves["agm"][0], "no_detach": curves["no_detach"][0]},
                                     fig / "no_detach_curves.png")
        figures.plot_weight_stats({"agm": curves["agm"][0], "no_detach": curves["no_detach"][0]},
                                  fig / "no_detach_weights.png")
        verdicts = [f"seed {s}: " + controls_report.describe_collapse(controls_report.collapse_step(
            nd, ag, params["potential"]["margin"])) for s, nd, ag in zip(seeds, curves["no_detach"], curves["agm"])]
        sections.append(Section(
            "No stop-gradient (paper §4.4)", "Drift loss, potential loss and weights of AGM without the "
            "stop-gradient against the stop-gradient run. The paper claims a collapse within 20k steps at full "
            "scale. " + " ".join(verdicts), image="figures/no_detach_curves.png"))
        sections.append(Section("No stop-gradient — weights", "", image="figures/no_detach_weights.png"))

    if "time_only" in models:
        d = controls_report.paired_difference(reproduced["time_only"]["distance"], reproduced["agm"]["distance"])
        sections.append(Section("Time-only weighting against AGM",
                                controls_report.describe_time_only(d, dist)))

    return write_report(out_dir, title="AGM reproduction report", sections=sections, params=params,
                        git_rev=git_rev, profile=profile)


def load_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
