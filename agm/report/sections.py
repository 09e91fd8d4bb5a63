"""The report's sections, one function each: draw its figure (if any) and return its :class:`Section` list.

Each function takes the loaded stage outputs (:class:`RunOutputs`), the figures folder and the few plain
parameter values it needs, and returns the section(s) to show, in page order; an empty list when the
run has nothing for that section (e.g. no controls, or λ = 0 and so no potential). A number that cannot be
computed (a seed whose output is missing, a NaN, a division by 0) reads "n/a (<reason>)"; it never raises.
The numbers come from :mod:`agm.report.analysis` and :mod:`agm.report.controls`; the drawing from
:mod:`agm.report.figures`; the tables from :mod:`agm.report.tables`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agm.io.data import to_model_range
from agm.math.metrics.sample_quality import DESCRIPTIONS, DISTANCE_NAMES
from agm.math.saliency import saliency_at_times
from agm.math.time_bins import TimeWeightTable
from agm.models.files import load_potential
from agm.report import analysis, figures, stats, tables
from agm.report import controls as controls_report
from agm.report.page import Section

FIGURES = "figures"
"""The report's figures folder, relative to the report folder (images are referenced by this path)."""

SALIENCY_TIMES = (0.1, 0.5, 0.9)
"""The bridge times of Fig. 5."""


@dataclass(frozen=True)
class RunOutputs:
    """The finished stage outputs the report shows, loaded.

    Attributes:
        models: model names, "baseline" and "agm" first, then any controls.
        seeds: the training seeds; every per-seed list below follows this order, with None for a seed whose
            output is missing (shown as n/a).
        real: real training images, uint8 (N, C, H, W).
        grids: model → uint8 sample grid of the first seed (Fig. 3), None when missing.
        curves: model → dvclive curves per seed (step, drift_loss or action_loss, potential_loss, w_*).
        metrics: model → per-seed metrics dicts (the evaluate stage's JSON).
        features_metrics: the features stage's JSON (feature space, classifier accuracy, real vs real).
        steps: model → per-seed metric-vs-steps frames (step, distance column, precision, recall).
        agm_model: model.pt of the AGM run of the first seed, for Fig. 5 (None: no Fig. 5).
        time_table: AGM's mean weight per t-bin (first seed), for the weight-vs-t figure.
    """

    models: Sequence[str]
    seeds: Sequence[int]
    real: np.ndarray
    grids: dict[str, np.ndarray | None]
    curves: dict[str, list[pd.DataFrame | None]]
    metrics: dict[str, list[dict[str, Any] | None]]
    features_metrics: dict[str, Any]
    steps: dict[str, list[pd.DataFrame | None]]
    agm_model: Path | None = None
    time_table: TimeWeightTable | None = None

    @property
    def space(self) -> str:
        """The feature space of the metrics ("digits" or "inception")."""
        return self.features_metrics["feature_space"]

    @property
    def dist(self) -> str:
        """The distance's key in the metrics (e.g. "fd_digits")."""
        return DISTANCE_NAMES[self.space]

    @property
    def dist_title(self) -> str:
        """The distance's column header: FID only when it is one."""
        return "FID (Inception-v3)" if self.space == "inception" else "FD (digit-classifier features)"

    @property
    def controls(self) -> list[str]:
        """The control models, in order."""
        return [m for m in self.models if m not in ("baseline", "agm")]

    @property
    def seed_text(self) -> str:
        return f"seed {self.seeds[0]}" if len(self.seeds) == 1 else f"seeds {', '.join(map(str, self.seeds))}"

    @property
    def interval(self) -> str:
        """How the tables' cells are aggregated over seeds, in words."""
        if len(self.seeds) > 1:
            return "mean ± 95% Student-t interval over " + self.seed_text
        return f"one {self.seed_text}, so no interval (list more in params `seeds`)"

    def reproduced(self) -> dict[str, dict[str, list[float | None]]]:
        """model → distance / precision / recall → per-seed values (None: missing), every model."""
        return analysis.reproduced_metrics(self.metrics, self.models, self.dist)

    def first_curves(self, models: Sequence[str]) -> tuple[dict[str, pd.DataFrame], str]:
        """The first seed's curves of ``models`` that have them, and the sentence naming the others (or "")."""
        first = {m: self.curves[m][0] for m in models}
        missing = [m for m, curve in first.items() if curve is None]
        note = f" {', '.join(missing)}: {stats.na(f'seed {self.seeds[0]} curves missing')}." if missing else ""
        return {m: curve for m, curve in first.items() if curve is not None}, note


def _figure(name: str) -> str:
    return f"{FIGURES}/{name}"


def _missing_runs(outputs: RunOutputs, per_seed: dict[str, Sequence[Any]], models: Sequence[str]) -> str:
    """Why a quantity over every seed of ``models`` is n/a ("baseline: seed 1 missing"), "" when none is missing."""
    present = {m: [None if x is None else 0.0 for x in per_seed[m]] for m in models}  # 0.0: a run that is there
    return ", ".join(f"{m}: {reason}" for m in models if (reason := stats.unusable(present[m], outputs.seeds)))


def samples_section(outputs: RunOutputs, fig_dir: Path, grid_nfe: int) -> list[Section]:
    """Fig. 3: real images beside each model's uncurated grid (sampled with ``grid_nfe`` steps)."""
    grids = {m: grid for m, grid in outputs.grids.items() if grid is not None}
    missing = [m for m, grid in outputs.grids.items() if grid is None]
    text = (f"Uncurated samples at NFE {grid_nfe} with a fixed seed (training seed {outputs.seeds[0]}), beside "
            "real training images.")
    if missing:
        text += f" {', '.join(missing)}: {stats.na(f'seed {outputs.seeds[0]} sample grid missing')}."
    if not grids:
        return [Section("Fig. 3 — samples", text)]
    figures.plot_sample_comparison(outputs.real[: len(next(iter(grids.values())))], grids,
                                   fig_dir / "fig3_samples.png",
                                   title="Real images and uncurated samples (same noise for every model)")
    return [Section("Fig. 3 — samples", text, image=_figure("fig3_samples.png"))]


def training_curves_section(outputs: RunOutputs, fig_dir: Path) -> list[Section]:
    """Fig. 4: the first seed's drift loss of every drift model, and the potential loss."""
    curves, missing = outputs.first_curves(outputs.models)
    drift_models = {m: curve for m, curve in curves.items() if "drift_loss" in curve}
    text = (f"Top: (weighted) drift loss L_f on a log scale, every drift model overlaid (seed {outputs.seeds[0]}). "
            "Bottom: the potential loss L_V (models with a V)." + missing)
    if not drift_models:
        return [Section("Fig. 4 — training curves", text)]
    figures.plot_training_curves(drift_models, fig_dir / "fig4_training_curves.png")
    return [Section("Fig. 4 — training curves", text, image=_figure("fig4_training_curves.png"))]


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


def saliency_section(outputs: RunOutputs, fig_dir: Path, sigma_max: float, schedule: str,
                     seed: int) -> list[Section]:
    """Fig. 5: the trained potential's saliency on bridge samples (none without an AGM model)."""
    if outputs.agm_model is None:
        return []
    if not Path(outputs.agm_model).is_file():
        return [Section("Fig. 5 — saliency of the potential",
                        stats.na(f"seed {outputs.seeds[0]} AGM model missing: {outputs.agm_model}"))]
    x_t, saliency = saliency_panels(outputs.agm_model, outputs.real, sigma_max, schedule, seed)
    figures.plot_saliency(x_t, saliency, fig_dir / "fig5_saliency.png")
    return [Section(
        "Fig. 5 — saliency of the potential", "|∇ₓV(x_t)| of the trained potential on bridge samples of "
        "real images at t = 0.1, 0.5, 0.9 (each map scaled to its own maximum).",
        image=_figure("fig5_saliency.png"))]


def table3_sections(outputs: RunOutputs, profile: str) -> list[Section]:
    """Table 3 reproduced (baseline and AGM, with the real-vs-real reference), then the paper's."""
    reproduced, dist, seeds = outputs.reproduced(), outputs.dist, outputs.seeds
    t3 = tables.table3({m: reproduced[m] for m in ("baseline", "agm")}, outputs.dist_title, seeds)
    n_samples = next((row["n_samples"] for row in outputs.metrics["agm"] if row is not None), None)
    features = outputs.features_metrics
    rr = {k: math.nan if features["real_vs_real"][k] is None else float(features["real_vs_real"][k])
          for k in (dist, "precision", "recall")}
    text = (f"Reproduced with the **{profile}** profile, "
            f"{n_samples if n_samples is not None else stats.na('every AGM metrics file missing')} samples per "
            f"model, {outputs.interval}; feature space: {DESCRIPTIONS[outputs.space]}. Real-vs-real reference "
            f"(held-out vs training images): {dist} = {tables.number(rr[dist], 3)}, precision = "
            f"{tables.number(rr['precision'], 3)}, recall = {tables.number(rr['recall'], 3)}.")
    if features.get("classifier_heldout_accuracy") is not None:
        text += (" The classifier's held-out accuracy is "
                 f"{tables.number(float(features['classifier_heldout_accuracy']), 3)}.")
    if len(seeds) > 1:
        text += (" Runs of one seed share f's initialisation and every random draw, so the paired difference "
                 "removes the seed-to-seed spread: " + controls_report.describe_paired(
                     {m: reproduced[m]["distance"] for m in ("baseline", "agm")}, "baseline", dist, seeds=seeds))
    if len(seeds) > 1:
        paper_rel = tables.paper_table3_values().delta_rel
        text += " What this comparison could detect: " + "; ".join(
            stats.describe_power(reproduced["baseline"][m], reproduced["agm"][m], dist if m == "distance" else m,
                                 paper_rel[m].value) for m in tables.METRICS) + "."
    pt3 = tables.paper_table3()
    return [
        Section("Table 3 — reproduced", text, table_md=tables.to_markdown(t3), table_html=tables.to_html(t3)),
        Section("Table 3 — the paper (CelebA-HQ 64×64, FID on 10k samples, 500k steps)",
                "The paper's numbers, for comparison of the direction and size of the change; "
                "absolute values are not comparable across feature spaces or profiles.",
                table_md=tables.to_markdown(pt3), table_html=tables.to_html(pt3)),
    ]


def every_model_section(outputs: RunOutputs) -> list[Section]:
    """Table 3's evaluation for every model, the controls included (none without controls)."""
    if not outputs.controls:
        return []
    reproduced = outputs.reproduced()
    every = tables.table3(reproduced, outputs.dist_title, outputs.seeds)
    paired = controls_report.describe_paired({m: reproduced[m]["distance"] for m in outputs.models}, "agm",
                                             outputs.dist, seeds=outputs.seeds) if len(outputs.seeds) > 1 else ""
    return [Section(
        "Every model — controls beside Table 3", f"The same evaluation for every model, {outputs.interval}. "
        "no_detach: AGM without the stop-gradient (paper §4.4); time_only: no V, the loss weighted by AGM's "
        "mean weight at each t; action_matching: a scalar action s(x, t) sampled along ∇ₓs (Neklyudov et "
        "al., 2023). The Δ rows compare AGM with the baseline. " + paired,
        table_md=tables.to_markdown(every), table_html=tables.to_html(every))]


def metric_vs_steps_section(outputs: RunOutputs, fig_dir: Path, snapshot_samples: int) -> list[Section]:
    """The distance of the EMA snapshots against training steps, and when AGM reaches the baseline's final
    value (none unless both the baseline and AGM have snapshots)."""
    if not all(outputs.steps.get(m) for m in ("baseline", "agm")):
        return []
    dist, seeds, seed_text = outputs.dist, outputs.seeds, outputs.seed_text
    text = (f"The EMA snapshots evaluated with {snapshot_samples} samples each "
            f"({'mean ± 95% interval over ' + seed_text if len(seeds) > 1 else seed_text}). The paper claims AGM at "
            "≈70% of the steps matches the baseline at 100%.")
    if missing := _missing_runs(outputs, outputs.steps, ("baseline", "agm")):
        return [Section("Metric vs training steps", f"{text} The curves: {stats.na(missing)}.")]
    comparison = analysis.compare_steps(outputs.steps, dist)
    base_final, reach, total = comparison.baseline_final, comparison.agm_reaches_at, comparison.total_steps
    figures.plot_metric_vs_steps(comparison.curves, dist, fig_dir / "metric_vs_steps.png", target=base_final,
                                 target_label="baseline, final")
    share = f" ({100 * reach / total:.0f}% of the steps)" if reach is not None and total > 0 else ""
    if not math.isfinite(base_final):
        claim = f"When AGM reaches the baseline's final {dist}: {tables.number(base_final, 3)}."
    elif reach is not None:
        claim = f"AGM first reaches the baseline's final {dist} ({base_final:.3f}) at step {reach} of {total}{share}."
    else:
        claim = f"AGM never reaches the baseline's final {dist} ({base_final:.3f}) within {total} steps."
    return [Section("Metric vs training steps", f"{text} {claim}", image=_figure("metric_vs_steps.png"))]


def weight_stats_section(outputs: RunOutputs, fig_dir: Path, lam: float) -> list[Section]:
    """Min / mean / max of the importance weights of every weighted model, corr(w, t), and how far from
    uniform the weights are (effective sample size, max/min ratio, share at the clamp) (none when no model
    logs weights). ``lam``: λ, for the bound e^λ on the ratio that Eq. 11 allows before the clamp."""
    weighted = {m: curve for m, curve in outputs.first_curves(outputs.models)[0].items() if "w_mean" in curve}
    if not weighted:
        return []
    figures.plot_weight_stats(weighted, fig_dir / "weight_stats.png")
    seeds = outputs.seeds
    corr = {m: analysis.weight_time_correlation(outputs.curves[m], seeds) for m in weighted}
    text = (f"Min / mean / max of w per logged step (seed {outputs.seeds[0]}). Correlation of w with t over a "
            "batch, averaged over logged steps: " + ", ".join(f"{m}: {v.format(3)}" for m, v in corr.items())
            + ".")
    sections = [Section("Importance weights", text, image=_figure("weight_stats.png"))]
    diagnosed = {m: curve for m, curve in weighted.items() if "w_ess" in curve}
    if diagnosed:
        figures.plot_weight_diagnostics(diagnosed, fig_dir / "weight_diagnostics.png")
        summary = "; ".join(
            f"{m}: effective sample size {analysis.mean_over_runs(outputs.curves[m], 'w_ess', seeds).format(3)} of "
            f"the batch, max/min {analysis.mean_over_runs(outputs.curves[m], 'w_ratio', seeds).format(3)}, at a "
            f"clamp bound {analysis.mean_over_runs(outputs.curves[m], 'w_clamped', seeds).format(3)}"
            for m in diagnosed)
        sections.append(Section(
            "How far the weights are from uniform",
            f"In Eq. 11 the logits λ·sigmoid(V) lie in (0, λ), so before the clamp the largest weight is at most "
            f"e^λ = {math.exp(lam):.4g} times the smallest (λ = {lam:g}). The effective sample size "
            "(Σw)² / (B Σw²) is 1 for equal weights and 1/B when one sample carries all the weight. Averaged "
            f"over logged steps, mean ± 95% interval over seeds: {summary}.",
            image=_figure("weight_diagnostics.png")))
    return sections


def weight_by_time_section(outputs: RunOutputs, fig_dir: Path) -> list[Section]:
    """AGM's mean weight per t-bin, the table the time_only control trains with (none without one)."""
    table = outputs.time_table
    if table is None:
        return []
    figures.plot_weight_by_time(table.weights, fig_dir / "weight_by_time.png")
    return [Section(
        "AGM's weight as a function of t", f"AGM's mean importance weight per t-bin over the whole run "
        f"(seed {outputs.seeds[0]}, {table.bins} bins, normalised to unit mean over t): the table the time_only "
        "control trains with. A flat line means V's weights carry no time information.",
        image=_figure("weight_by_time.png"))]


def _collapse_verdict(no_detach: pd.DataFrame | None, agm: pd.DataFrame | None, margin: float) -> str:
    """The collapse sentence of one seed's no_detach run against its AGM run, n/a when either log is missing."""
    missing = [m for m, curve in (("no_detach", no_detach), ("agm", agm)) if curve is None]
    if missing:
        return stats.na(f"{' and '.join(missing)} curves missing") + "."
    return controls_report.describe_collapse(controls_report.collapse_step(no_detach, agm, margin))


def no_detach_sections(outputs: RunOutputs, fig_dir: Path, margin: float) -> list[Section]:
    """AGM without the stop-gradient against AGM: curves, weights and a collapse verdict per seed
    (none unless the no_detach control ran). ``margin`` is the hinge margin m of L_V."""
    if "no_detach" not in outputs.models:
        return []
    curves = outputs.curves
    verdicts = [f"seed {seed}: " + _collapse_verdict(no_detach, agm, margin)
                for seed, no_detach, agm in zip(outputs.seeds, curves["no_detach"], curves["agm"], strict=True)]
    text = ("Drift loss, potential loss and weights of AGM without the stop-gradient against the stop-gradient run. "
            "The paper claims a collapse within 20k steps at full scale. " + " ".join(verdicts))
    pair, missing = outputs.first_curves(["agm", "no_detach"])
    if missing:
        return [Section("No stop-gradient (paper §4.4)", text + " Figures:" + missing)]
    figures.plot_training_curves(pair, fig_dir / "no_detach_curves.png")
    figures.plot_weight_stats(pair, fig_dir / "no_detach_weights.png")
    return [
        Section("No stop-gradient (paper §4.4)", text, image=_figure("no_detach_curves.png")),
        Section("No stop-gradient — weights", "", image=_figure("no_detach_weights.png")),
    ]


def time_only_section(outputs: RunOutputs) -> list[Section]:
    """The time_only control minus AGM, paired by seed, with its verdict (none unless time_only ran)."""
    if "time_only" not in outputs.models:
        return []
    reproduced = outputs.reproduced()
    difference = controls_report.paired_difference(reproduced["time_only"]["distance"],
                                                    reproduced["agm"]["distance"], outputs.seeds)
    return [Section("Time-only weighting against AGM", controls_report.describe_time_only(difference, outputs.dist))]
