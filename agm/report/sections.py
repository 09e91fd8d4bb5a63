"""The report's sections, one function each: return its :class:`Section` list, with the figure that a figure stage
drew for it (``figures`` and ``saliency`` in dvc.yaml) where there is one.

Each function takes the loaded stage outputs (:class:`agm.report.outputs.RunOutputs`) and the few plain
parameter values it needs, and returns the section(s) to show, in page order; an empty list when the
run has nothing for that section (e.g. no controls, or λ = 0 and so no potential). A number that cannot be
computed (a seed whose output is missing, a NaN, a division by 0) reads "n/a (<reason>)"; it never raises.
The numbers come from :mod:`agm.report.analysis` and :mod:`agm.report.controls`; the tables from
:mod:`agm.report.tables`. Nothing here draws or imports torch: the figures are files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from agm.config.feature_spaces import DESCRIPTIONS
from agm.report import analysis, stats, tables
from agm.report import controls as controls_report
from agm.report.outputs import RunOutputs
from agm.report.page import Section

FIGURES = "figures"
"""The report's figures folder, relative to the report folder (images are referenced by this path)."""

def _figure(outputs: RunOutputs, name: str) -> str | None:
    """The report's path of figure ``name`` (copied into its figures folder), None when no stage drew it."""
    return f"{FIGURES}/{outputs.figures[name].name}" if name in outputs.figures else None


def _missing_runs(outputs: RunOutputs, per_seed: dict[str, Sequence[Any]], models: Sequence[str]) -> str:
    """Why a quantity over every seed of ``models`` is n/a ("baseline: seed 1 missing"), "" when none is missing."""
    present = {m: [None if x is None else 0.0 for x in per_seed[m]] for m in models}  # 0.0: a run that is there
    return ", ".join(f"{m}: {reason}" for m in models if (reason := stats.unusable(present[m], outputs.seeds)))


def samples_section(outputs: RunOutputs, grid_nfe: int) -> list[Section]:
    """Fig. 3: real images beside each model's uncurated grid (sampled with ``grid_nfe`` steps)."""
    text = (f"Uncurated samples at NFE {grid_nfe} with a fixed seed (training seed {outputs.seeds[0]}), beside "
            "real training images.")
    entry = outputs.figure_manifest.get("fig3_samples", {})
    missing = list(outputs.models) if "fig3_samples" not in outputs.figures else entry.get("missing", [])
    if missing:
        text += f" {', '.join(missing)}: {stats.na(f'seed {outputs.seeds[0]} sample grid missing')}."
    return [Section("Fig. 3 — samples", text, image=_figure(outputs, "fig3_samples"))]


def training_curves_section(outputs: RunOutputs) -> list[Section]:
    """Fig. 4: the first seed's drift loss of every drift model, and the potential loss."""
    _, missing = outputs.first_curves(outputs.models)
    text = (f"Top: (weighted) drift loss L_f on a log scale, every drift model overlaid (seed {outputs.seeds[0]}). "
            "Bottom: the potential loss L_V (models with a V)." + missing)
    return [Section("Fig. 4 — training curves", text, image=_figure(outputs, "fig4_training_curves"))]


def saliency_section(outputs: RunOutputs) -> list[Section]:
    """Fig. 5: the trained potential's saliency on bridge samples (none without a potential)."""
    manifest = outputs.saliency
    if manifest is not None and not manifest["potential"]:
        return []
    if manifest is None or "fig5_saliency" not in outputs.figures:
        return [Section("Fig. 5 — saliency of the potential",
                        stats.na(f"seed {outputs.seeds[0]} saliency figure missing"))]
    times = ", ".join(f"{t:g}" for t in manifest["times"])
    return [Section(
        "Fig. 5 — saliency of the potential", "|∇ₓV(x_t)| of the trained potential on bridge samples of "
        f"real images at t = {times} (each map scaled to its own maximum).",
        image=_figure(outputs, "fig5_saliency"))]


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


def metric_vs_steps_section(outputs: RunOutputs, snapshot_samples: int) -> list[Section]:
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
    share = f" ({100 * reach / total:.0f}% of the steps)" if reach is not None and total > 0 else ""
    if not math.isfinite(base_final):
        claim = f"When AGM reaches the baseline's final {dist}: {tables.number(base_final, 3)}."
    elif reach is not None:
        claim = f"AGM first reaches the baseline's final {dist} ({base_final:.3f}) at step {reach} of {total}{share}."
    else:
        claim = f"AGM never reaches the baseline's final {dist} ({base_final:.3f}) within {total} steps."
    return [Section("Metric vs training steps", f"{text} {claim}", image=_figure(outputs, "metric_vs_steps"))]


def weight_stats_section(outputs: RunOutputs, lam: float) -> list[Section]:
    """Min / mean / max of the importance weights of every weighted model, corr(w, t), and how far from
    uniform the weights are (effective sample size, max/min ratio, share at the clamp) (none when no model
    logs weights). ``lam``: λ, for the bound e^λ on the ratio that Eq. 11 allows before the clamp."""
    weighted = {m: curve for m, curve in outputs.first_curves(outputs.models)[0].items() if "w_mean" in curve}
    if not weighted:
        return []
    seeds = outputs.seeds
    corr = {m: analysis.weight_time_correlation(outputs.curves[m], seeds) for m in weighted}
    text = (f"Min / mean / max of w per logged step (seed {outputs.seeds[0]}). Correlation of w with t over a "
            "batch, averaged over logged steps: " + ", ".join(f"{m}: {v.format(3)}" for m, v in corr.items())
            + ".")
    sections = [Section("Importance weights", text, image=_figure(outputs, "weight_stats"))]
    diagnosed = {m: curve for m, curve in weighted.items() if "w_ess" in curve}
    if diagnosed:
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
            image=_figure(outputs, "weight_diagnostics")))
    return sections


def weight_by_time_section(outputs: RunOutputs) -> list[Section]:
    """AGM's mean weight per t-bin, the table the time_only control trains with (none without one)."""
    if outputs.time_bins is None:
        return []
    return [Section(
        "AGM's weight as a function of t", f"AGM's mean importance weight per t-bin over the whole run "
        f"(seed {outputs.seeds[0]}, {outputs.time_bins} bins, normalised to unit mean over t): the table the "
        "time_only control trains with. A flat line means V's weights carry no time information.",
        image=_figure(outputs, "weight_by_time"))]


def _collapse_verdict(no_detach: pd.DataFrame | None, agm: pd.DataFrame | None, margin: float) -> str:
    """The collapse sentence of one seed's no_detach run against its AGM run, n/a when either log is missing."""
    missing = [m for m, curve in (("no_detach", no_detach), ("agm", agm)) if curve is None]
    if missing:
        return stats.na(f"{' and '.join(missing)} curves missing") + "."
    return controls_report.describe_collapse(controls_report.collapse_step(no_detach, agm, margin))


def no_detach_sections(outputs: RunOutputs, margin: float) -> list[Section]:
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
    return [
        Section("No stop-gradient (paper §4.4)", text, image=_figure(outputs, "no_detach_curves")),
        Section("No stop-gradient — weights", "", image=_figure(outputs, "no_detach_weights")),
    ]


def time_only_section(outputs: RunOutputs) -> list[Section]:
    """The time_only control minus AGM, paired by seed, with its verdict (none unless time_only ran)."""
    if "time_only" not in outputs.models:
        return []
    reproduced = outputs.reproduced()
    difference = controls_report.paired_difference(reproduced["time_only"]["distance"],
                                                    reproduced["agm"]["distance"], outputs.seeds)
    return [Section("Time-only weighting against AGM", controls_report.describe_time_only(difference, outputs.dist))]
