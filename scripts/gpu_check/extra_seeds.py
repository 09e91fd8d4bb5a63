"""``extra_seeds``: if the budget has time left, the default profile's arms of the power study (baseline, AGM at
λ = 0.1 and 1, the shuffled control at λ = 1; ``--arms``) for extra seeds, trained, sampled (10,000 samples each) and
evaluated, as rows (extra_seeds.csv) plus the samples (one extra_seeds_<arm>.npz per arm) for the power study."""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.pipeline import arm as _arm
from tools.pipeline import read_metrics, read_params, stage_commands, stage_env, write_params

from .common import DEFAULT, run_stages

ARMS = ("baseline", "agm@0.1", "agm@1.0", "shuffled@1.0")
"""The powered study's arms (docs/results/power/): the baseline, AGM at the paper's λ and at the sweep's best, and the
shuffled control (AGM's weights permuted across the batch) at λ = 1. ``model@λ``: the variant at that ``lambda``."""


def section_extra_seeds(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Default-profile arms (:data:`ARMS`) for extra seeds, in parallel waves of seeds, until the budget ends.

    Each λ gets its own working folder (its own params.yaml), sharing one prepared dataset and one feature network,
    so every arm is scored in the same feature space; the baseline does not read λ and trains once.
    """
    deadline = time.monotonic() + args.section_budget
    first_seed = args.first_seed if args.first_seed is not None else (900 if args.dry_run else 100)
    arms = args.arms
    wave = 1 if args.dry_run else max(1, 12 // len(arms))
    overrides: dict[str, Any] = {"sample.num_samples": 10_000}
    if args.dry_run:
        overrides = {"train.steps": 4, "train.batch_size": 32, "execution.log_every": 2,
                     "execution.checkpoint_every": 2, "train.snapshot_every": 0, "sample.num_samples": 64,
                     "sample.batch_size": 64, "sample.nfe": 2, "sample.grid_nfe": 2, "sample.grid_size": 4,
                     "eval.feature_net_epochs": 1, "execution.device": "cpu"}
    base = read_params(DEFAULT)
    setup_dir = tmp / "extra_seeds"
    setup_dir.mkdir()
    write_params(base, setup_dir / "params.yaml", overrides)
    setup = run_stages(["source", "prepare", "features"], setup_dir, "extra_seeds ")
    out: dict[str, Any] = {"first_seed": first_seed, "arms": list(arms), "overrides": overrides, "setup": setup,
                           "rows": [], "failures": [], "cut_by_budget": []}
    if any(r["returncode"] for r in setup):
        out["passed"] = False
        return out
    workdirs: dict[float, Path] = {}
    default_lambda = float(base["lambda"])
    for arm in arms:  # one folder per λ, each with the shared data/ (prepared images and feature network)
        lam = _arm(arm, default_lambda)[1]
        if lam not in workdirs:
            work = tmp / f"extra_seeds_lambda_{lam:g}"
            shutil.copytree(setup_dir, work)
            write_params(base, work / "params.yaml", {**overrides, "lambda": lam})
            workdirs[lam] = work
    rows_csv = Path(args.out) / "extra_seeds.csv"
    samples: dict[str, dict[str, np.ndarray]] = {arm: {} for arm in arms}
    seed, per_wave_s = first_seed, None
    env = stage_env(OMP_NUM_THREADS="2")
    while True:
        left = deadline - time.monotonic()
        if per_wave_s is not None and left < 1.2 * per_wave_s:
            break
        seeds = list(range(seed, seed + wave))
        seed += wave
        t0 = time.perf_counter()
        procs = []
        for s in seeds:  # one chain per (arm, seed): train -> sample -> evaluate
            for arm in arms:
                model, lam = _arm(arm, default_lambda)
                work = workdirs[lam]
                train = f"train_{model}@{s}" if model in ("baseline", "agm") else f"train_control@{model}-{s}"
                sample = f"sample@{model}-{s}" if model in ("baseline", "agm") else f"sample_control@{model}-{s}"
                evaluate = f"evaluate@{model}-{s}" if model in ("baseline", "agm") else f"evaluate_control@{model}-{s}"
                script = " && ".join(stage_commands([train, sample, evaluate]).values())
                log_path = tmp / f"extra_{arm}_{s}.log"
                log = open(log_path, "w")
                procs.append((arm, s, work, log, log_path, subprocess.Popen(
                    script, shell=True, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)))
        for arm, s, work, log, log_path, proc in procs:
            model, lam = _arm(arm, default_lambda)
            try:
                rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:  # the budget ended: not a failure of the chain
                proc.kill()
                proc.wait()
                log.close()
                out["cut_by_budget"].append({"arm": arm, "seed": s})
                continue
            log.close()
            if rc != 0:
                out["failures"].append({"arm": arm, "seed": s, "returncode": rc, "tail": log_path.read_text()[-1500:]})
                continue
            m = read_metrics(work, model, s)
            row = {"model": model, "lambda": 0.0 if model == "baseline" else lam, "seed": s,
                   "device": args.device_name, "profile": "default",
                   **{k: m[k] for k in m if k != "seconds"}}
            out["rows"].append(row)
            samples[arm][f"{model}_s{s}"] = np.load(work / "samples" / model / f"s{s}" / "samples.npy")
        per_wave_s = time.perf_counter() - t0
        print(f"extra_seeds: wave {seeds} in {per_wave_s:.0f} s, {len(out['rows'])} rows", flush=True)
        if out["rows"]:
            with open(rows_csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(out["rows"][0]))
                w.writeheader()
                w.writerows(out["rows"])
            for arm, sets in samples.items():  # one file per arm: each stays under the 16 MB a file may bring back
                if sets:
                    np.savez_compressed(Path(args.out) / f"extra_seeds_{arm.replace('@', '_lambda_')}.npz", **sets)
        if out["failures"] or out["cut_by_budget"] or time.monotonic() > deadline or args.dry_run:
            break  # a dry run shows the chain working once
    # a dry run must show the whole chain working once; on a GPU the rows are whatever the budget left time for
    out["passed"] = not out["failures"] and (bool(out["rows"]) or not args.dry_run)
    return out
