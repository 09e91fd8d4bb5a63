"""``converged_study``: the powered study at the default profile's plateau (docs/results/converged): baseline, AGM at
λ = 0.1, 1, 3, 10 and the shuffled control at λ = 1, each arm's seeds trained stacked, then sampled (10,000),
evaluated and scored per snapshot by the pipeline's own stages, rows as they land."""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.converged_study import CONVERGED_STEPS, STUDY_ARMS, study_overrides
from tools.pipeline import arm as _arm
from tools.pipeline import chain, read_metrics, read_params, stage_commands, stage_env, write_params

from .common import DEFAULT, run_stages, write_part


def section_converged_study(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The powered study at the plateau: every arm of :data:`STUDY_ARMS` trained with its seeds stacked in one
    process (tools.train_stacked, into the train stages' state folders), then each seed's train (no steps), sample
    (10,000 samples), evaluate and, for the baseline and AGM, steps (EMA snapshots every 10% of the steps, 5,000
    samples each) stages, as dvc.yaml writes them, one chain per seed, all of an arm's seeds at once; one row per
    seed (converged_study.csv) and each seed's steps curve (converged_study_steps/), written as they land, until
    the budget ends."""
    deadline = time.monotonic() + args.section_budget
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 200)
    steps = 6 if args.dry_run else CONVERGED_STEPS
    overrides: dict[str, Any] = study_overrides(steps)
    # dry: every kind of arm once through its stages, AGM's two seeds stacked (sized for a loaded 2-core machine)
    arms = [("baseline", 1), ("agm@1.0", 2), ("shuffled@1.0", 1)] if args.dry_run else list(STUDY_ARMS)
    if args.dry_run:
        overrides |= {"train.batch_size": 32, "execution.log_every": 2, "execution.checkpoint_every": 2,
                      "sample.num_samples": 64, "sample.batch_size": 64, "sample.nfe": 2, "sample.grid_nfe": 2,
                      "sample.grid_size": 4, "eval.feature_net_epochs": 1, "eval.snapshot_samples": 32,
                      "execution.device": "cpu"}
    base = read_params(DEFAULT)
    setup_dir = tmp / "converged"
    setup_dir.mkdir()
    write_params(base, setup_dir / "params.yaml", overrides)
    os.environ["AGM_STATE_DIR"] = str(tmp / "converged_state")  # shared: the baseline trains once for every λ
    setup = run_stages(["source", "prepare", "features"], setup_dir, "converged_study ")
    out: dict[str, Any] = {"steps": steps, "first_seed": first_seed, "overrides": overrides, "setup": setup,
                           "arms": [a for a, _ in arms], "rows": [], "failures": [], "trained": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    default_lambda, workdirs = float(base["lambda"]), {}
    rows_csv, steps_dir = Path(args.out) / "converged_study.csv", Path(args.out) / "converged_study_steps"
    env = stage_env()
    for arm, n in arms:
        model, lam = _arm(arm, default_lambda)
        if lam not in workdirs:
            workdirs[lam] = tmp / f"converged_lambda_{lam:g}"
            shutil.copytree(setup_dir, workdirs[lam])
            write_params(base, workdirs[lam] / "params.yaml", {**overrides, "lambda": lam})
        work, seeds = workdirs[lam], list(range(first_seed, first_seed + n))
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "tools.train_stacked", "--params", "params.yaml", "--variant",
                              model, "--seeds", *map(str, seeds), "--data", "data/prepared/train.npz"],
                             cwd=work, env=env, capture_output=True, text=True,
                             timeout=max(deadline - time.monotonic(), 1))
        out["trained"].append({"arm": arm, "seeds": seeds, "returncode": res.returncode,
                               "seconds": round(time.perf_counter() - t0, 1)})
        print(f"converged_study: {arm} seeds {seeds[0]}-{seeds[-1]} trained stacked in "
              f"{out['trained'][-1]['seconds']} s (rc {res.returncode})", flush=True)
        if res.returncode:
            out["failures"].append({"arm": arm, "tail": (res.stdout + res.stderr)[-1500:]})
            break
        main = model in ("baseline", "agm")
        chains = []  # one chain of stage commands per seed, all seeds at once (the networks are small)
        for seed in seeds:
            names = chain(model, seed)
            log_path = tmp / f"converged_{arm}_{seed}.log"
            log = open(log_path, "w")
            chains.append((seed, log, log_path, subprocess.Popen(
                " && ".join(stage_commands(names).values()), shell=True, cwd=work, env=env, stdout=log,
                stderr=subprocess.STDOUT)))
        for seed, log, log_path, proc in chains:
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:  # the budget ended: the rows so far stand
                proc.kill()
                proc.wait()
                rc = None
            log.close()
            if rc != 0:
                if rc is not None:
                    out["failures"].append({"arm": arm, "seed": seed, "returncode": rc,
                                            "tail": log_path.read_text()[-1500:]})
                continue
            m = read_metrics(work, model, seed)
            out["rows"].append({"model": model, "lambda": 0.0 if model == "baseline" else lam, "seed": seed,
                                "device": args.device_name, "profile": "default", "train_steps": steps,
                                **{k: m[k] for k in m if k != "seconds"}})
            if main:
                (steps_dir / arm.replace("@", "_lambda_")).mkdir(parents=True, exist_ok=True)
                shutil.copy(work / "steps" / model / f"s{seed}.csv",
                            steps_dir / arm.replace("@", "_lambda_") / f"s{seed}.csv")
            with open(rows_csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(out["rows"][0]))
                w.writeheader()
                w.writerows(out["rows"])
            write_part(args, out)
        print(f"converged_study: {arm}: {len(out['rows'])} rows so far", flush=True)
        if time.monotonic() > deadline - 20:
            break
    # a dry run must show every kind of arm through its stages; on a GPU the rows are what the budget left time for
    out["passed"] = not out["failures"] and (not args.dry_run or len(out["rows"]) == sum(n for _, n in arms))
    return out
