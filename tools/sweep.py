"""Gather a λ sweep of AGM, the baseline and a control into a results page: per-run rows, a summary and a
metric-vs-λ plot. Not a pipeline stage: run it after the queued experiments have finished. The intended
sweep (seeds 0, 1, 2: the default `seeds`; the baseline never reads λ, so it is trained once and shared):

    for lam in 0.1 0.3 1 3 10 30; do dvc exp run --queue -S lambda=$lam; done
    for lam in 0.1 30; do dvc exp run --queue -S lambda=$lam -S 'controls=[shuffled]'; done
    dvc queue start --jobs 2
    dvc queue status                                     # wait until every task has succeeded
    python -m tools.sweep --out docs/results/lambda-sweep

It reads `dvc exp show --json` (or a saved copy, --exp-json) and writes into --out:
  runs.csv     one row per (config, model, λ, seed): config, model, lambda, seed, fd_digits or fid,
               precision, recall, w_ratio, ess (NaN for unweighted models), rev, name (agm.report.sweep.sweep_rows)
  summary.csv  per (config, model, λ): seeds, mean, 95% Student-t half-width (<metric>_ci) and seeds used
               (<metric>_n) of every metric, paired_seeds and the paired difference from the baseline at the
               same config, λ and seed of the distance, precision and recall (<m>_minus_baseline, _ci, _n,
               _excludes_0; see summarize)
  lambda.png   every metric against λ (log axis, λ > 0), one line per model, the baseline as a band

What it refuses to mix, loudly:
  - revisions whose params differ in anything but λ, seeds and controls (another train.steps, profile, ...)
    are separate configs: it stops and names the differing params; --config ID picks one;
  - the workspace's rows are left out unless `dvc status` is clean (with --exp-json: unless --status-json,
    a `dvc status --json` saved with it, is `{}`): a workspace not reproduced holds stale metrics;
  - a metric that is NaN or null at some seed is averaged over the others, and it says over how many.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agm.config.errors import run_main
from agm.io.atomic import atomic_dir
from agm.report.sweep import (
    incomplete,
    one_config,
    plot_sweep,
    summarize,
    sweep_rows,
    without_workspace,
)


def _dvc_json(*args: str) -> Any:
    res = subprocess.run(["dvc", *args, "--json"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} --json failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--exp-json", help="a saved `dvc exp show --json`; default: run it now")
    ap.add_argument("--status-json", help="with --exp-json: a `dvc status --json` saved with it")
    ap.add_argument("--config", help="the config (runs.csv's first column) to summarise when there are several")
    args = ap.parse_args()
    if args.exp_json:
        exp_show = json.loads(Path(args.exp_json).read_text())
        status = json.loads(Path(args.status_json).read_text()) if args.status_json else None
    else:
        exp_show, status = _dvc_json("exp", "show"), _dvc_json("status")
    if status != {}:
        why = (f"dvc status lists {', '.join(sorted(status))}" if status else
               "a saved `dvc exp show` does not say whether it was reproduced (pass --status-json)")
        print(f"sweep: the workspace's rows are left out: {why}", file=sys.stderr)
        exp_show = without_workspace(exp_show)
    try:
        rows = one_config(sweep_rows(exp_show), exp_show, args.config)
        summary = summarize(rows)
    except ValueError as exc:  # no sweep, several configs, or two results for one run: a one-line user error
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for line in incomplete(summary):
        print(f"sweep: {line}", file=sys.stderr)
    with atomic_dir(args.out) as out:
        # 10 significant digits: the metrics carry 4 decimals, and an FD in the hundreds needs 8 to keep them
        rows.to_csv(out / "runs.csv", index=False, float_format="%.10g")
        summary.to_csv(out / "summary.csv", index=False, float_format="%.10g")
        plot_sweep(summary, out / "lambda.png")
    print(summary.to_string(index=False))


if __name__ == "__main__":
    run_main(main)
