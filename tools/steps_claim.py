"""The paper's metric-vs-steps claim ("AGM at about 70% of the steps matches the baseline") at each λ of a sweep.

For every ``LAMBDA=REV`` (a git revision or DVC experiment of the sweep, e.g. ``1=straw-aqua``) it reads that
revision's metric-vs-steps CSVs (``steps/<model>/s<seed>.csv``, committed with each experiment) and asks, as
the report does (agm.report.analysis.compare_steps), at which snapshot the AGM curve averaged over seeds
first reaches the baseline's final distance; and the same per seed. Paired by seed
(agm.report.analysis.paired_gap_to_final), it also gives the step at which AGM's gap to the baseline's final
value, AGM_s(k) − baseline_s(last), crosses 0 on average, with the steps at which the ends of its pointwise
95% band cross (an interval; empty: not within the steps run). Writes one CSV row per λ, and with --gaps-out
the gap at every snapshot, beside two references paired the same way: the baseline's own gap to its final value,
baseline_s(k) − baseline_s(K) (how far the baseline itself is at that step), and AGM − baseline at the same step,
AGM_s(k) − baseline_s(k):

    python -m tools.steps_claim --out docs/results/lambda-sweep/steps_claim.csv 0.1=HEAD 1=straw-aqua ...

Run it in the repository that holds the experiments (their refs are local unless pushed). REV may also be a folder
holding copies of the CSVs as ``<model>/s<seed>.csv`` (e.g. docs/results/power/steps_l0.1); its λ is then the caller's
word.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from agm.report.analysis import GapToFinal, compare_steps, first_step_reaching, paired_gap_to_final
from agm.report.stats import mean_ci


def show(sha: str, path: str) -> str:
    """The text of ``path`` at commit ``sha``."""
    return subprocess.run(["git", "show", f"{sha}:{path}"], capture_output=True, text=True, check=True).stdout


def _is_commit(rev: str) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"],
                          capture_output=True).returncode == 0


def _commit_sha(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", rev], capture_output=True, text=True, check=True).stdout.strip()


def _experiment_sha(name: str) -> str:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps"],
                          capture_output=True, text=True, check=True).stdout.split("\n")
    found = [line.split()[1] for line in refs if line and line.split()[0].endswith(f"/{name}")]
    if len(found) != 1:
        raise SystemExit(f"error: experiment {name!r} matches {len(found)} refs under refs/exps")
    return found[0]


def gap_table(lam: float, steps: dict[str, list[pd.DataFrame]], metric: str,
              gap: GapToFinal) -> list[dict[str, float]]:
    """One row per snapshot step k, each a mean over seeds with its 95% half-width: AGM's gap to the same seed's
    final baseline value (``gap``, from :func:`paired_gap_to_final` on ``steps``), the baseline's gap to its own
    final value (``baseline_gap``) and AGM − baseline at step k (``same_step_diff``); every frame has ``gap``'s
    steps (:func:`paired_gap_to_final` refuses any other grid)."""
    base = [b.sort_values("step")[metric].to_numpy(dtype=float) for b in steps["baseline"]]
    agm = [a.sort_values("step")[metric].to_numpy(dtype=float) for a in steps["agm"]]
    rows = []
    for i, (k, g) in enumerate(zip(gap.steps, gap.gaps, strict=True)):
        own = mean_ci([float(b[i] - b[-1]) for b in base])
        same = mean_ci([float(a[i] - b[i]) for a, b in zip(agm, base, strict=True)])
        rows.append({"lambda": lam, "step": k, "fraction": k / gap.total_steps, "seeds": g.n,
                     "gap_mean": round(g.mean, 4), "gap_95_half_width": round(g.half_width, 4),
                     "baseline_gap_mean": round(own.mean, 4), "baseline_gap_95_half_width": round(own.half_width, 4),
                     "same_step_diff_mean": round(same.mean, 4),
                     "same_step_diff_95_half_width": round(same.half_width, 4)})
    return rows


def claim(lam: float, steps: dict[str, list[pd.DataFrame]], metric: str, label: str
          ) -> tuple[dict[str, object], list[dict[str, float]]]:
    """The claim's row at one λ from paired steps curves (``steps["baseline"][i]`` and ``steps["agm"][i]`` of one
    seed): where AGM's mean curve, and each seed's, first reaches the baseline's final value, and the paired
    crossing with its 95% band; and :func:`gap_table`'s rows. Frames that do not pair (another step grid, a
    missing value) raise paired_gap_to_final's ValueError, before anything is computed from them."""
    gap = paired_gap_to_final(steps, metric)
    cmp = compare_steps(steps, metric)
    per_seed = [first_step_reaching(a["step"].tolist(), a[metric].tolist(), float(b[metric].iloc[-1]))
                for a, b in zip(steps["agm"], steps["baseline"], strict=True)]
    row = {"lambda": lam, "rev": label, "seeds": len(steps["agm"]),
           f"baseline_final_{metric}": round(cmp.baseline_final, 4),
           "agm_mean_reaches_at_step": "never" if cmp.agm_reaches_at is None else cmp.agm_reaches_at,
           "total_steps": cmp.total_steps,
           "fraction": "" if cmp.agm_reaches_at is None else cmp.agm_reaches_at / cmp.total_steps,
           "per_seed_steps": " ".join("never" if s is None else str(s) for s in per_seed),
           **{f"paired_crossing{end}": "" if step is None else round(step)
              for end, step in (("", gap.crossing), ("_95_low", gap.crossing_low), ("_95_high", gap.crossing_high))}}
    return row, gap_table(lam, steps, metric, gap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="CSV to write")
    ap.add_argument("--metric", default="fd_digits")
    ap.add_argument("--gaps-out", help="CSV of AGM's paired gap to the baseline's final value at every snapshot")
    ap.add_argument("runs", nargs="+", help="LAMBDA=REV: a revision, experiment name or folder of CSVs per λ")
    args = ap.parse_args()
    rows, gap_rows = [], []
    for spec in args.runs:
        lam, _, rev = spec.partition("=")
        if Path(rev).is_dir():  # a copy of the CSVs: <folder>/<model>/s<seed>.csv, every seed with both models
            folder, label = Path(rev), rev
            seeds = sorted(int(p.stem[1:]) for p in (folder / "agm").glob("s*.csv")
                           if (folder / "baseline" / p.name).is_file())
            steps = {m: [pd.read_csv(folder / m / f"s{s}.csv") for s in seeds] for m in ("baseline", "agm")}
        else:
            rev = _commit_sha(rev) if _is_commit(rev) else _experiment_sha(rev)
            label = rev[:10]
            params = yaml.safe_load(show(rev, "params.yaml"))
            if float(params["lambda"]) != float(lam):
                raise SystemExit(f"error: {rev} has lambda {params['lambda']}, not {lam}")
            seeds = params["seeds"]
            steps = {m: [pd.read_csv(io.StringIO(show(rev, f"steps/{m}/s{s}.csv"))) for s in seeds]
                     for m in ("baseline", "agm")}
        try:
            row, gaps = claim(float(lam), steps, args.metric, label)
        except ValueError as exc:  # curves that do not pair: one line, as the CLI's other errors
            raise SystemExit(f"error: λ = {lam} ({label}): {exc}") from None
        rows.append(row)
        gap_rows += gaps
    table = pd.DataFrame(rows).sort_values("lambda")
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    if args.gaps_out:
        pd.DataFrame(gap_rows).to_csv(args.gaps_out, index=False)


if __name__ == "__main__":
    main()
