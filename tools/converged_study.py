"""The powered study at the default profile's plateau: arms × seeds trained to CONVERGED_STEPS, resumable.

Every (arm, seed) runs dvc.yaml's own stage commands (tools.pipeline) in a work folder per λ: train (to the plateau,
EMA snapshots every 10% of the steps), sample (10,000 images), evaluate and, for the baseline and AGM, steps (5,000
samples per snapshot, for the steps claim). Seeds run seed by seed across the arms, so every finished seed is a
complete pair; ``--jobs`` chains run side by side, each at ``--threads`` threads (on a 2-core CPU two one-thread
chains train about 1.4× as many runs per hour as one at two threads: docs/benchmark.md, "Seeds per hour").

Each finished run appends one row to OUT/runs.csv and copies its steps curve to OUT/steps/<arm>/s<seed>.csv at once
(``--commit`` also commits them), so a run stopped at any point loses nothing finished; run the same command again
and it skips the rows it has and resumes a half-trained run from its last checkpoint (the train stage's state
folder under ``--state``). The baseline trains once per seed for every λ.

    python -m tools.converged_study run --work /tmp/study --out docs/results/converged/study --seeds 0-9 --jobs 2
    python -m tools.converged_study run ... --arms agm@3.0 agm@10.0 --seeds 0-4

``scripts/gpu_check/``'s converged_study section runs the same arms on a GPU, each arm's seeds stacked in one
process (tools.train_stacked) before their chains.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tools.pipeline import ROOT, arm, chain, read_metrics, read_params, stage_commands, stage_env, write_params

CONVERGED_STEPS = 4000
"""The default profile's plateau length (docs/results/converged): the first step count after which doubling the
steps improves fd_digits at 10,000 samples by less than 5%."""
STUDY_ARMS = (("baseline", 10), ("agm@0.1", 10), ("agm@1.0", 10), ("shuffled@1.0", 10), ("agm@3.0", 5),
              ("agm@10.0", 5))
"""The study's arms and the seeds each needs: ≥ 10 paired seeds at λ 0.1 and 1 and the shuffled control, ≥ 5 at
λ 3 and 10 (the effect against λ)."""


def study_overrides(steps: int = CONVERGED_STEPS) -> dict[str, Any]:
    """The default profile's params changed for the study: the plateau's steps, snapshots every 10% of them, and
    5,000 samples per snapshot (the steps claim); everything else as the default."""
    return {"train.steps": steps, "train.snapshot_every": max(1, steps // 10), "sample.num_samples": 10_000,
            "eval.snapshot_samples": 5_000}


def cpu_name() -> str:
    """This machine's CPU model (rows pair only within one machine type)."""
    import torch

    from agm.training.peak_flops import device_name

    return "cpu:" + device_name(torch.device("cpu"))


def parse_seeds(text: str) -> list[int]:
    """``0-9`` or ``0,3,5`` or ``4`` -> the seeds."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


class Rows:
    """OUT/runs.csv, one row per finished (model, λ, seed, device), rewritten whole after each new row."""

    def __init__(self, out: Path, commit: bool) -> None:
        self.out, self.commit, self.lock = out, commit, threading.Lock()
        self.path = out / "runs.csv"
        self.frame = pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()

    def has(self, model: str, lam: float, seed: int, device: str) -> bool:
        f = self.frame
        return not f.empty and bool(((f.model == model) & (f["lambda"] == lam) & (f.seed == seed)
                                     & (f.device == device)).any())

    def add(self, row: dict[str, Any], steps_csv: Path | None, name: str) -> None:
        with self.lock:
            self.frame = pd.concat([self.frame, pd.DataFrame([row])], ignore_index=True)
            self.frame = self.frame.sort_values(["model", "lambda", "seed"], kind="stable")
            tmp = self.path.with_suffix(".csv.tmp")
            self.frame.to_csv(tmp, index=False)
            tmp.replace(self.path)
            paths = [self.path]
            if steps_csv is not None:
                dest = self.out / "steps" / name.replace("@", "_lambda_") / f"s{row['seed']}.csv"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(steps_csv, dest)
                paths.append(dest)
            if self.commit:
                msg = (f"Converged study: {name} seed {row['seed']} at {row['train_steps']} steps, "
                       f"fd_digits {row['fd_digits']:.3f} ({row['device']})")
                files = [str(p.resolve()) for p in paths]
                for _ in range(20):  # the repository holding OUT; another git command may hold its index a moment
                    subprocess.run(["git", "add", *files], cwd=self.out, capture_output=True)
                    res = subprocess.run(["git", "commit", "-q", "-m", msg, "--", *files], cwd=self.out,
                                         capture_output=True, text=True)
                    if res.returncode == 0:
                        break
                    time.sleep(3)


def setup(work: Path, lambdas: list[float], overrides: dict[str, Any]) -> dict[float, Path]:
    """One work folder per λ holding params.yaml and the shared data stages' outputs (run once)."""
    base = read_params(ROOT / "params.yaml")
    first = work / "setup"
    if not (first / "data" / "features").exists():
        first.mkdir(parents=True, exist_ok=True)
        write_params(base, first / "params.yaml", overrides)
        for name, cmd in stage_commands(["source", "prepare", "features"]).items():
            print(f"setup: {name}", flush=True)
            subprocess.run(cmd, shell=True, cwd=first, env=stage_env(), check=True)
    folders = {}
    for lam in lambdas:
        folder = work / f"lambda_{lam:g}"
        if not folder.exists():
            shutil.copytree(first, folder)
        write_params(base, folder / "params.yaml", {**overrides, "lambda": lam})
        folders[lam] = folder
    return folders


def run(args: argparse.Namespace) -> None:
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    overrides = study_overrides(args.steps) | {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    default_lambda = float(read_params(ROOT / "params.yaml")["lambda"])
    arms = [(name, *arm(name, default_lambda)) for name in args.arms]
    folders = setup(work, sorted({lam for _, model, lam in arms if model != "baseline"} or {default_lambda}),
                    overrides)
    rows = Rows(out, args.commit)
    device = args.device_name or cpu_name()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    env = stage_env(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                    AGM_STATE_DIR=str(Path(args.state).resolve()))
    todo = []
    for seed in parse_seeds(args.seeds):  # seed by seed, so each finished seed pairs across the arms
        for name, model, lam in arms:
            lam_row = 0.0 if model == "baseline" else lam
            if not rows.has(model, lam_row, seed, device):
                todo.append((name, model, lam, lam_row, seed))
    print(f"converged_study: {len(todo)} runs to do on {device}, {args.jobs} at a time", flush=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    def one(task: tuple[str, str, float, float, int]) -> None:
        name, model, lam, lam_row, seed = task
        folder = folders[lam] if model != "baseline" else folders[min(folders)]
        names = chain(model, seed)
        log = logs / f"{name.replace('@', '_')}_s{seed}.log"
        t0 = time.perf_counter()
        with open(log, "a") as fh:
            for stage, cmd in stage_commands(names).items():
                s0 = time.perf_counter()
                rc = subprocess.run(cmd, shell=True, cwd=folder, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT).returncode
                print(f"  {name} s{seed} {stage}: rc {rc} in {time.perf_counter() - s0:.0f} s", flush=True)
                if rc:
                    print(f"converged_study: {name} seed {seed} failed in {stage}; log {log}", file=sys.stderr,
                          flush=True)
                    return
        m = read_metrics(folder, model, seed)
        row = {"model": model, "lambda": lam_row, "seed": seed, "device": device, "profile": "default",
               "train_steps": args.steps, "threads": args.threads, "commit": commit,
               **{k: v for k, v in m.items() if k != "seconds"},
               "chain_seconds": round(time.perf_counter() - t0, 1)}
        steps_csv = folder / "steps" / model / f"s{seed}.csv" if model in ("baseline", "agm") else None
        rows.add(row, steps_csv, name if model != "baseline" else "baseline")
        print(f"converged_study: {name} seed {seed}: fd_digits {m['fd_digits']:.3f} "
              f"in {row['chain_seconds']:.0f} s", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))


def _steps(out: Path, lam: float) -> dict[str, list[pd.DataFrame]]:
    """The paired steps curves at λ: the seeds with both the baseline's and AGM's curve, in seed order."""
    agm_dir, base_dir = out / "steps" / f"agm_lambda_{lam}", out / "steps" / "baseline"
    seeds = sorted(int(p.stem[1:]) for p in agm_dir.glob("s*.csv") if (base_dir / p.name).is_file())
    return {"baseline": [pd.read_csv(base_dir / f"s{s}.csv") for s in seeds],
            "agm": [pd.read_csv(agm_dir / f"s{s}.csv") for s in seeds]}


def lambda_figure(summary: pd.DataFrame, path: Path, metric: str = "fd_digits") -> None:
    """AGM − baseline (paired by seed, mean ± 95% CI) against λ, the shuffled control beside it, the paper's
    relative effect as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary[(summary.metric == metric) & (summary.reference == "baseline")]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for model, color, dx in (("agm", "black", 1.0), ("shuffled", "tab:orange", 1.08)):
        sel = rows[rows.model == model].sort_values("lambda")
        if not sel.empty:
            ax.errorbar(sel["lambda"] * dx, sel.paired_diff, yerr=sel.ci95_half_width, fmt="o-" if model == "agm"
                        else "s", color=color, capsize=4, label=f"{model} − baseline")
            for _, r in sel.iterrows():
                ax.annotate(f"{int(r.seeds)}", (r["lambda"] * dx, r.paired_diff), textcoords="offset points",
                            xytext=(5, -10), fontsize=7, color=color)
    agm = rows[rows.model == "agm"]
    if not agm.empty and agm.paper_relative_pct.notna().any():
        paper = float(agm.paper_relative_pct.dropna().iloc[0]) / 100 * float(agm.reference_mean.mean())
        relative = paper / agm.reference_mean.mean()
        ax.axhline(paper, color="tab:red", lw=1, ls="--", label=f"the paper's {relative:+.1%}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel(f"{metric}: arm − baseline (paired by seed)")
    ax.set_title("at the plateau: mean ± 95% CI (seeds annotated)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pm(mean: float, hw: float, digits: int = 3) -> str:
    return f"{mean:+.{digits}f} ± {hw:.{digits}f}" if pd.notna(hw) else f"{mean:+.{digits}f}"


def verdict_md(summary: pd.DataFrame, claims: pd.DataFrame, runs: pd.DataFrame) -> str:
    """tables.md: every comparison's paired difference, relative change and minimum detectable effect, and the
    steps claim, written from the CSVs (nothing in it is typed by hand)."""
    steps = sorted(set(runs.train_steps))
    lines = [f"# The study at the plateau ({', '.join(map(str, steps))} training steps): tables from runs.csv", "",
             "Written by `python -m tools.converged_study summarize`; paired by (machine, seed); 95% Student-t "
             "intervals; minimum detectable effect at 80% power, α = 0.05, for the seeds each comparison has.", "",
             "| arm | reference | metric | seeds | reference mean | arm − reference | relative | minimum detectable "
             "| the paper's relative |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        paper = f"{r.paper_relative_pct:+.1f}%" if pd.notna(r.paper_relative_pct) else ""
        lines.append(f"| {r.model} λ={r['lambda']:g} | {r.reference} | {r.metric} | {int(r.seeds)} | "
                     f"{r.reference_mean:.4g} | {_pm(r.paired_diff, r.ci95_half_width)} | {r.relative_pct:+.1f}% | "
                     f"±{r.minimum_detectable_effect:.3g} | {paper} |")
    if not claims.empty:
        lines += ["", "The steps claim (AGM's paired gap to the same seed's final baseline value crosses 0 at; its "
                  "95% band's ends; empty: not within the steps run):", "",
                  "| λ | seeds | baseline final | AGM mean reaches it at | paired crossing | 95% band |",
                  "|---|---|---|---|---|---|"]
        for _, c in claims.iterrows():
            base = next(v for k, v in c.items() if k.startswith("baseline_final_"))
            lines.append(f"| {c['lambda']:g} | {int(c.seeds)} | {base:.4g} | {c.agm_mean_reaches_at_step} of "
                         f"{c.total_steps} | {c.paired_crossing} | {c.paired_crossing_95_low}–"
                         f"{c.paired_crossing_95_high} |")
    return "\n".join(lines) + "\n"


def summarize(args: argparse.Namespace) -> None:
    from tools.power_study import figure
    from tools.power_study import summarize as compare
    from tools.steps_claim import claim

    out = Path(args.out)
    runs = pd.read_csv(out / "runs.csv")
    summary = compare(runs)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.5g")
    figure(runs, summary, str(out / "paired.png"))
    lambda_figure(summary, out / "lambda.png")
    rows, gaps = [], []
    for lam in sorted(set(runs.loc[runs.model == "agm", "lambda"])):
        steps = _steps(out, lam)
        if len(steps["agm"]) >= 2:
            row, g = claim(float(lam), steps, "fd_digits", f"steps/agm_lambda_{lam}")
            rows.append(row)
            gaps += g
    claims = pd.DataFrame(rows)
    claims.to_csv(out / "steps_claim.csv", index=False)
    pd.DataFrame(gaps).to_csv(out / "steps_gaps.csv", index=False)
    (out / "tables.md").write_text(verdict_md(summary, claims, runs))
    print((out / "tables.md").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train, sample and evaluate the missing (arm, seed) runs")
    r.add_argument("--work", required=True, help="work folders (one per λ), logs")
    r.add_argument("--out", default="docs/results/converged/study", help="runs.csv and steps/ land here")
    r.add_argument("--state", default=".agm_state", help="the train stages' resume state (AGM_STATE_DIR)")
    r.add_argument("--arms", nargs="+", default=[a for a, _ in STUDY_ARMS[:4]])
    r.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,2,4")
    r.add_argument("--steps", type=int, default=CONVERGED_STEPS)
    r.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--device-name", default=None, help="the rows' device (default: this CPU's model)")
    r.add_argument("--commit", action="store_true", help="git-commit each row as it lands")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="further params overrides (dotted keys, YAML values), e.g. for a tiny trial run")
    m = sub.add_parser("summarize", help="summary.csv, paired.png, lambda.png, steps_claim.csv, tables.md")
    m.add_argument("--out", default="docs/results/converged/study")
    args = p.parse_args()
    (run if args.cmd == "run" else summarize)(args)


if __name__ == "__main__":
    main()
