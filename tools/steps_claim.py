"""The paper's metric-vs-steps claim ("AGM at about 70% of the steps matches the baseline") at each λ of a sweep.

For every ``LAMBDA=REV`` (a git revision or DVC experiment of the sweep, e.g. ``1=straw-aqua``) it reads that
revision's metric-vs-steps CSVs (``steps/<model>/s<seed>.csv``, committed with each experiment) and asks, as
the report does (agm.report.analysis.compare_steps), at which snapshot the AGM curve averaged over seeds
first reaches the baseline's final distance; and the same per seed. Paired by seed
(agm.report.analysis.paired_gap_to_final), it also gives the step at which AGM's gap to the baseline's final
value, AGM_s(k) − baseline_s(last), crosses 0 on average, with the steps at which the ends of its pointwise
95% band cross (an interval; empty: not within the steps run). Writes one CSV row per λ, and with --gaps-out
the gap at every snapshot:

    python -m tools.steps_claim --out docs/results/lambda-sweep/steps_claim.csv 0.1=HEAD 1=straw-aqua ...

Run it in the repository that holds the experiments (their refs are local unless pushed).
"""

from __future__ import annotations

import argparse
import io
import subprocess

import pandas as pd
import yaml

from agm.report.analysis import compare_steps, first_step_reaching, paired_gap_to_final


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="CSV to write")
    ap.add_argument("--metric", default="fd_digits")
    ap.add_argument("--gaps-out", help="CSV of AGM's paired gap to the baseline's final value at every snapshot")
    ap.add_argument("runs", nargs="+", help="LAMBDA=REV: a revision or experiment name per λ")
    args = ap.parse_args()
    rows, gap_rows = [], []
    for spec in args.runs:
        lam, _, rev = spec.partition("=")
        rev = _commit_sha(rev) if _is_commit(rev) else _experiment_sha(rev)
        params = yaml.safe_load(show(rev, "params.yaml"))
        if float(params["lambda"]) != float(lam):
            raise SystemExit(f"error: {rev} has lambda {params['lambda']}, not {lam}")
        seeds = params["seeds"]
        steps = {m: [pd.read_csv(io.StringIO(show(rev, f"steps/{m}/s{s}.csv"))) for s in seeds]
                 for m in ("baseline", "agm")}
        cmp = compare_steps(steps, args.metric)
        per_seed = [first_step_reaching(a["step"].tolist(), a[args.metric].tolist(), float(b[args.metric].iloc[-1]))
                    for a, b in zip(steps["agm"], steps["baseline"], strict=True)]
        gap = paired_gap_to_final(steps, args.metric)
        gap_rows += [{"lambda": float(lam), "step": k, "fraction": k / gap.total_steps, "seeds": g.n,
                      "gap_mean": round(g.mean, 4), "gap_95_half_width": round(g.half_width, 4)}
                     for k, g in zip(gap.steps, gap.gaps, strict=True)]
        rows.append({"lambda": float(lam), "rev": rev[:10], "seeds": len(seeds),
                     f"baseline_final_{args.metric}": round(cmp.baseline_final, 4),
                     "agm_mean_reaches_at_step": "never" if cmp.agm_reaches_at is None else cmp.agm_reaches_at,
                     "total_steps": cmp.total_steps,
                     "fraction": "" if cmp.agm_reaches_at is None else cmp.agm_reaches_at / cmp.total_steps,
                     "per_seed_steps": " ".join("never" if s is None else str(s) for s in per_seed),
                     **{f"paired_crossing{end}": "" if step is None else round(step)
                        for end, step in (("", gap.crossing), ("_95_low", gap.crossing_low),
                                          ("_95_high", gap.crossing_high))}})
    table = pd.DataFrame(rows).sort_values("lambda")
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    if args.gaps_out:
        pd.DataFrame(gap_rows).to_csv(args.gaps_out, index=False)


if __name__ == "__main__":
    main()
