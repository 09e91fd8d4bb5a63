"""The powered study's summary: every arm against the baseline, paired by seed, with what it could detect.

Input: one or more run tables (``--runs``: CSV rows ``model, lambda, seed, device, <metric>...``, as
``scripts/gpu_check.sh``'s extra_seeds.csv), concatenated; an arm is a (model, λ) other than the baseline, compared
with the baseline and (a control) with AGM at its λ, each pair of runs of one machine and training seed. For each
comparison and metric: the seeds both have, the paired difference arm − reference with its 95% Student-t interval, the
paired SD, the minimum detectable effect at 80% power and α = 0.05 for those seeds (agm/report/stats.py), the
relative change, and the seeds the paper's relative effect would need. Writes ``--summary`` (CSV) and ``--figure``
(the per-seed differences of the distance with their mean and interval, beside the paper's effect).

    python -m tools.power_study --runs docs/results/power/runs.csv \
        --summary docs/results/power/summary.csv --figure docs/results/power/paired.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agm.report.stats import mean_ci, power_of_pairs  # noqa: E402
from agm.report.tables import PAPER_RELATIVE_PCT  # noqa: E402

PAPER_RELATIVE = {"fd": PAPER_RELATIVE_PCT["distance"], "precision": PAPER_RELATIVE_PCT["precision"],
                  "recall": PAPER_RELATIVE_PCT["recall"]}
"""The paper's Table 3 change of AGM over the baseline, in percent, by this table's metric kind."""


def _pairs(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows keyed by (device, seed): runs pair only with runs of the same machine and training seed."""
    device = runs["device"].astype(str) if "device" in runs.columns else pd.Series("", index=runs.index)
    return runs.assign(pair=device + ":" + runs["seed"].astype(str))


def comparisons(runs: pd.DataFrame) -> list[tuple[tuple[str, float], tuple[str, float]]]:
    """(arm, reference) pairs of (model, λ): every arm against the baseline, and each control against AGM at its λ."""
    arms = sorted({(m, float(lam)) for m, lam in zip(runs.model, runs["lambda"]) if m != "baseline"})
    out = [(arm, ("baseline", 0.0)) for arm in arms]
    out += [(arm, ("agm", arm[1])) for arm in arms if arm[0] != "agm" and ("agm", arm[1]) in arms]
    return out


def _select(runs: pd.DataFrame, model: str, lam: float) -> pd.DataFrame:
    sel = runs[runs.model == model] if model == "baseline" else runs[(runs.model == model) & (runs["lambda"] == lam)]
    return sel.set_index("pair")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    runs = _pairs(runs)
    metrics = [c for c in runs.columns if c.startswith(("fd_", "fid", "kd_", "kid", "precision", "recall"))]
    rows = []
    for (model, lam), (ref_model, ref_lam) in comparisons(runs):
        arm, base = _select(runs, model, lam), _select(runs, ref_model, ref_lam)
        shared = sorted(set(arm.index) & set(base.index))
        for metric in metrics:
            diff = (arm.loc[shared, metric] - base.loc[shared, metric]).astype(float).dropna()
            if diff.empty:  # a metric one of the two arms' rows do not carry (kd_digits before it existed)
                continue
            pairs = list(diff.index)
            ci = mean_ci(diff.tolist())
            base_mean = float(base.loc[pairs, metric].mean())
            kind = "fd" if metric.startswith(("fd", "fid")) else metric if metric in PAPER_RELATIVE else None
            paper = PAPER_RELATIVE.get(kind) if kind and ref_model == "baseline" else None
            pp = power_of_pairs(diff.tolist(), base_mean, paper)
            reference = ref_model if ref_model == "baseline" else f"{ref_model}@{ref_lam:g}"
            rows.append({
                "model": model, "lambda": lam, "reference": reference,
                "devices": ";".join(sorted(set(arm.loc[pairs, "device"].astype(str)))) if "device" in arm else "",
                "metric": metric, "seeds": len(pairs),
                "reference_mean": base_mean, "arm_mean": float(arm.loc[pairs, metric].mean()),
                "paired_diff": ci.mean, "ci95_half_width": ci.half_width,
                "relative_pct": 100 * ci.mean / base_mean if base_mean else float("nan"),
                "paired_sd": pp.sd, "minimum_detectable_effect": pp.mde, "paper_relative_pct": paper,
                "seeds_for_paper_effect": pp.seeds_for_paper if paper else None,
            })
    return pd.DataFrame(rows)


def figure(runs: pd.DataFrame, summary: pd.DataFrame, path: str) -> None:
    runs = _pairs(runs)
    dist = next(c for c in runs.columns if c.startswith(("fd_", "fid")))
    arms = summary[summary.metric == dist].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 3.6))
    for i, arm in arms.iterrows():
        ref_model, _, ref_lam = arm.reference.partition("@")
        sel, base = _select(runs, arm.model, arm["lambda"])[dist], _select(runs, ref_model, float(ref_lam or 0))[dist]
        pairs = sorted(set(sel.index) & set(base.index))
        ax.scatter([i] * len(pairs), sel.loc[pairs] - base.loc[pairs], s=12, alpha=0.6, color="tab:blue")
        ax.errorbar(i + 0.2, arm.paired_diff, yerr=arm.ci95_half_width, fmt="o", color="black", capsize=4)
        if pd.notna(arm.paper_relative_pct):
            ax.plot([i - 0.3, i + 0.3], [arm.paper_relative_pct / 100 * arm.reference_mean] * 2, color="tab:red")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(arms)), [f"{m} λ={lam:g}\n− {ref}\n{n} seeds, {d.split(' ')[0]}" for m, lam, ref, n, d in
                                     zip(arms.model, arms["lambda"], arms.reference, arms.seeds, arms.devices)],
                  fontsize=7)
    ax.set_ylabel(f"{dist}: arm − reference (paired by seed)")
    ax.set_title("seeds (dots), mean ± 95% CI (black),\nthe paper's relative effect (red)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--figure", required=True)
    args = ap.parse_args()
    runs = pd.concat([pd.read_csv(p) for p in args.runs], ignore_index=True)
    if "lambda" not in runs.columns:  # rows written before the arms had a λ column: AGM at the default λ
        runs["lambda"] = runs.model.map({"baseline": 0.0}).fillna(0.1)
    summary = summarize(runs)
    summary.to_csv(args.summary, index=False, float_format="%.5g")
    figure(runs, summary, args.figure)
    print(summary.to_string())


if __name__ == "__main__":
    main()
