"""Gather a λ sweep of AGM, the baseline and a control into a results page: per-run rows, a summary and a
metric-vs-λ plot. Not a pipeline stage: run it after the queued experiments have finished. The intended
sweep (seeds 0, 1, 2: the default `seeds`; the baseline never reads λ, so it is trained once and shared):

    for lam in 0.1 0.3 1 3 10 30; do dvc exp run --queue -S lambda=$lam; done
    for lam in 0.1 30; do dvc exp run --queue -S lambda=$lam -S 'controls=[shuffled]'; done
    dvc queue start --jobs 2
    dvc queue status                                     # wait until every task has succeeded
    python -m stages.sweep --out docs/results/lambda-sweep

It reads `dvc exp show --json` (or a saved copy, --exp-json) and writes into --out:
  runs.csv     one row per (model, λ, seed): model, lambda, seed, fd_digits or fid, precision, recall,
               w_ratio, ess (NaN for unweighted models), rev, name (see agm.report.sweep.sweep_rows)
  summary.csv  per (model, λ): seeds, mean and 95% Student-t half-width (<metric>_ci) of every metric,
               paired_seeds and the paired difference from the baseline at the same λ and seed of the
               distance, precision and recall (<m>_minus_baseline, _ci, _excludes_0; see summarize)
  lambda.png   every metric against λ (log axis, λ > 0), one line per model, the baseline as a band
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from agm.io import atomic_dir
from agm.report.sweep import plot_sweep, summarize, sweep_rows
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--exp-json", help="a saved `dvc exp show --json`; default: run it now")
    args = ap.parse_args()
    if args.exp_json:
        text = Path(args.exp_json).read_text()
    else:
        res = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"dvc exp show --json failed: {res.stderr.strip()}")
        text = res.stdout
    try:
        rows = sweep_rows(json.loads(text))
        summary = summarize(rows)
    except ValueError as exc:  # no sweep found, or two different results for one run: a one-line user error
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    with atomic_dir(args.out) as out:
        # 10 significant digits: the metrics carry 4 decimals, and an FD in the hundreds needs 8 to keep them
        rows.to_csv(out / "runs.csv", index=False, float_format="%.10g")
        summary.to_csv(out / "summary.csv", index=False, float_format="%.10g")
        plot_sweep(summary, out / "lambda.png")
    print(summary.to_string(index=False))


if __name__ == "__main__":
    run(main)
