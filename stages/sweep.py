"""Gather a λ sweep into a table and a metric-vs-λ plot. Not a pipeline stage: run it after the queued
experiments have finished, e.g. (the documented list)

    for lam in 0.0 0.05 0.1 0.3 1.0; do dvc exp run --queue -S lambda=$lam; done
    dvc queue start --jobs 1 && dvc queue status        # wait until every task has succeeded
    python -m stages.sweep --out sweep

It reads `dvc exp show --json` (or a saved copy, --exp-json), and writes sweep/lambda.csv (every
(λ, seed) row), sweep/summary.csv (mean and 95% half-width per λ) and sweep/lambda.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
    rows = sweep_rows(json.loads(text))
    summary = summarize(rows)
    with atomic_dir(args.out) as out:
        # 10 significant digits: the metrics carry 4 decimals, and an FD in the hundreds needs 8 to keep them
        rows.to_csv(out / "lambda.csv", index=False, float_format="%.10g")
        summary.to_csv(out / "summary.csv", index=False, float_format="%.10g")
        plot_sweep(summary, out / "lambda.png")
    print(summary.to_string(index=False))


if __name__ == "__main__":
    run(main)
