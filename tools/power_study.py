"""The powered study's summary: every arm against the baseline, paired by seed, with what it could detect.

Input: one or more run tables (``--runs``: CSV rows ``model, lambda, seed, <metric>...``, as
``scripts/gpu_check.sh``'s extra_seeds.csv), concatenated; an arm is a (model, λ) other than the baseline. For each
arm and metric: the seeds both have, the paired difference arm − baseline with its 95% Student-t interval, the
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


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c in runs.columns if c.startswith(("fd_", "fid", "kd_", "kid", "precision", "recall"))]
    base = runs[runs.model == "baseline"].set_index("seed")
    rows = []
    for (model, lam), arm in runs[runs.model != "baseline"].groupby(["model", "lambda"]):
        arm = arm.set_index("seed")
        seeds = sorted(set(arm.index) & set(base.index))
        for metric in metrics:
            diff = (arm.loc[seeds, metric] - base.loc[seeds, metric]).astype(float)
            ci = mean_ci(diff.tolist())
            base_mean = float(base.loc[seeds, metric].mean())
            kind = "fd" if metric.startswith(("fd", "fid")) else metric if metric in PAPER_RELATIVE else None
            paper = PAPER_RELATIVE.get(kind) if kind else None
            pp = power_of_pairs(diff.tolist(), base_mean, paper)
            rows.append({
                "model": model, "lambda": lam, "metric": metric, "seeds": len(seeds),
                "baseline_mean": base_mean, "arm_mean": float(arm.loc[seeds, metric].mean()),
                "paired_diff": ci.mean, "ci95_half_width": ci.half_width,
                "relative_pct": 100 * ci.mean / base_mean if base_mean else float("nan"),
                "paired_sd": pp.sd, "minimum_detectable_effect": pp.mde, "paper_relative_pct": paper,
                "seeds_for_paper_effect": pp.seeds_for_paper if paper else None,
            })
    return pd.DataFrame(rows)


def figure(runs: pd.DataFrame, summary: pd.DataFrame, path: str) -> None:
    dist = next(c for c in runs.columns if c.startswith(("fd_", "fid")))
    arms = summary[summary.metric == dist].reset_index(drop=True)
    base = runs[runs.model == "baseline"].set_index("seed")[dist]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 3.6))
    for i, arm in arms.iterrows():
        sel = runs[(runs.model == arm.model) & (runs["lambda"] == arm["lambda"])].set_index("seed")[dist]
        seeds = sorted(set(sel.index) & set(base.index))
        ax.scatter([i] * len(seeds), sel.loc[seeds] - base.loc[seeds], s=12, alpha=0.6, color="tab:blue")
        ax.errorbar(i + 0.2, arm.paired_diff, yerr=arm.ci95_half_width, fmt="o", color="black", capsize=4)
        if arm.paper_relative_pct is not None:
            ax.plot([i - 0.3, i + 0.3], [arm.paper_relative_pct / 100 * arm.baseline_mean] * 2, color="tab:red")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(arms)), [f"{m}\nλ = {lam:g}\n{n} seeds" for m, lam, n in
                                     zip(arms.model, arms["lambda"], arms.seeds)])
    ax.set_ylabel(f"{dist}: arm − baseline (paired by seed)")
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
