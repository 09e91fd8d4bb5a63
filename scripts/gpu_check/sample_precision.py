"""``sample_precision``: is bf16 sampling safe? float32 and bf16 sampling with the same noise on an AGM model the
converged study trained in this run (tools.sample_precision)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.pipeline import stage_env


def section_sample_precision(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Is bf16 sampling safe? tools.sample_precision on an AGM model the converged study trained in this run
    (λ = 0.1 where it got that far): float32 and bf16 with the same noise, 4 noise seeds at that study's sample
    count, the paired difference against the sampling noise. The paper profile keeps sample.amp none unless it is
    inside."""
    models = sorted(tmp.glob("converged_lambda_*/runs/agm/s*/model.pt"), key=lambda p: "lambda_0.1" not in str(p))
    if not models:
        return {"skipped": "the converged study trained no AGM model in this run", "passed": True}
    model, work = models[0], models[0].parents[3]
    out_json = Path(args.out) / "sample_precision.json"
    res = subprocess.run([sys.executable, "-m", "tools.sample_precision", "--model", str(model), "--features",
                          str(work / "data" / "features"), "--params", str(work / "params.yaml"), "--noise-seeds",
                          "0", "1", "2", "3", "--out", str(out_json)], cwd=work, env=stage_env(),
                         capture_output=True, text=True, timeout=max(args.section_budget, 10))
    print(res.stdout[-3000:] + res.stderr[-3000:], flush=True)
    if res.returncode:
        return {"returncode": res.returncode, "tail": (res.stdout + res.stderr)[-1500:], "passed": False}
    return {**json.loads(out_json.read_text()), "passed": True}
