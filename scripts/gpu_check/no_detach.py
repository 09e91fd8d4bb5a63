"""``no_detach``: the paper's stop-gradient claim (§4.4: without it training collapses within 20k steps): the
default profile's AGM and its no-stop-gradient control side by side for 3 seeds (``--first-seed``) to 20,000 steps
or the budget's end, their loss curves (no_detach_curves.csv) and the report's collapse rule applied to each seed's
curves as far as they got (a dry run: one seed)."""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path
from typing import Any

from tools.pipeline import read_params, stage_commands, stage_env, write_params

from .common import DEFAULT, run_stages

NO_DETACH_STEPS = 20_000
"""The paper's horizon for the collapse without the stop-gradient (§4.4)."""


def _curves(live: Path) -> Any:
    """A run's dvclive curves so far: step, drift_loss, potential_loss (what the collapse rule reads)."""
    import pandas as pd

    cols = [pd.read_csv(live / "plots" / "metrics" / "train" / f"{key}.tsv", sep="\t").set_index("step")[[key]]
            for key in ("drift_loss", "potential_loss")]
    return pd.concat(cols, axis=1).dropna().reset_index()


def section_no_detach(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """AGM and no_detach of 3 seeds trained side by side (one process each) towards 20k steps, until the budget ends;
    the collapse rule (agm.report.controls.collapse_step) on each seed's curves as far as both got."""
    from agm.report.controls import collapse_step, describe_collapse

    deadline = time.monotonic() + args.section_budget - 15  # time left to read the curves and write the result
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 100)
    seeds = [first_seed] if args.dry_run else [first_seed, first_seed + 1, first_seed + 2]
    steps = 6 if args.dry_run else NO_DETACH_STEPS
    overrides: dict[str, Any] = {"train.steps": steps, "train.snapshot_every": 0, "controls": ["no_detach"],
                                 "seeds": seeds, "execution.checkpoint_every": 1000}
    if args.dry_run:
        overrides |= {"train.batch_size": 32, "execution.log_every": 2, "execution.checkpoint_every": 2,
                      "eval.feature_net_epochs": 1, "execution.device": "cpu"}
    base = read_params(DEFAULT)
    work = tmp / "no_detach"
    work.mkdir()
    write_params(base, work / "params.yaml", overrides)
    setup = run_stages(["source", "prepare"], work, "no_detach ")
    out: dict[str, Any] = {"seeds": seeds, "steps": steps, "lambda": float(base["lambda"]), "overrides": overrides,
                           "setup": setup, "runs": [], "collapse": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    env = stage_env(OMP_NUM_THREADS="2")
    procs = []
    t0 = time.perf_counter()
    for s in seeds:
        for model, stage in (("agm", f"train_agm@{s}"), ("no_detach", f"train_control@no_detach-{s}")):
            log_path = tmp / f"no_detach_{model}_{s}.log"
            log = open(log_path, "w")
            procs.append((model, s, log, subprocess.Popen(stage_commands([stage])[stage], shell=True, cwd=work,
                                                          env=env, stdout=log, stderr=subprocess.STDOUT)))
    for model, s, log, proc in procs:
        try:
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:  # the budget ended: the curves so far still count
            proc.kill()
            rc = proc.wait()
        log.close()
        out["runs"].append({"model": model, "seed": s, "returncode": rc})
    out["seconds"] = round(time.perf_counter() - t0, 1)
    frames = []
    for s in seeds:
        curves = {}
        for model in ("agm", "no_detach"):
            live = work / "logs" / "train" / model / f"s{s}"  # the train stage's own log (dvc.yaml)
            if (live / "plots" / "metrics" / "train" / "drift_loss.tsv").exists():
                curves[model] = _curves(live)
                frames.append(curves[model].assign(model=model, seed=s))
        if len(curves) < 2:
            out["collapse"].append({"seed": s, "verdict": "no curves"})
            continue
        reached = int(min(curves["agm"]["step"].max(), curves["no_detach"]["step"].max()))
        nd = curves["no_detach"][curves["no_detach"]["step"] <= reached]
        c = collapse_step(nd, curves["agm"], float(base["potential"]["margin"]))
        out["collapse"].append({"seed": s, "steps_reached": reached, "collapse_step": c.step, "reason": c.reason,
                                "verdict": describe_collapse(c)})
    if frames:
        import pandas as pd

        pd.concat(frames).to_csv(Path(args.out) / "no_detach_curves.csv", index=False)
    reached = [c.get("steps_reached", 0) for c in out["collapse"]]
    out["steps_per_s"] = round(min(reached) / out["seconds"], 2) if out["seconds"] else None
    # a dry run must train every run to its end; on a GPU the curves are whatever the budget left time for
    out["passed"] = bool(frames) and (not args.dry_run or all(r["returncode"] == 0 for r in out["runs"]))
    return out
