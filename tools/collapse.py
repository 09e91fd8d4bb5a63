"""The paper's stop-gradient claim (§4.4: without sg(·) training collapses within 20k steps), seed by seed.

Each ROOT is a workspace (or a checkout of an experiment) that trained AGM and the ``no_detach`` control of the same
seeds, e.g. ``dvc exp run -S train.steps=20000 -S 'controls=[no_detach]' -S 'seeds=[100]' train_control``. For every
seed with both dvclive curves (``live/agm/s<seed>``, ``live/no_detach/s<seed>``) it applies the report's collapse rule
(agm.report.controls.collapse_step) up to the last step both runs logged, and writes one CSV row per seed, the curves
of all seeds (``--curves-out``) and a figure of both losses per seed (``--figure``):

    python -m tools.collapse --out docs/results/no-detach/collapse.csv \
        --curves-out docs/results/no-detach/curves.csv --figure docs/results/no-detach/curves.png ROOT [ROOT ...]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from agm.report.controls import collapse_smooth, collapse_step, describe_collapse  # noqa: E402
from agm.report.outputs import read_live_curves  # noqa: E402


def seed_curves(root: Path) -> dict[int, dict[str, pd.DataFrame]]:
    """{seed: {"agm": curves, "no_detach": curves}} for every seed of ``root`` that has both runs' curves."""
    found: dict[int, dict[str, pd.DataFrame]] = {}
    for folder in sorted((root / "live" / "no_detach").glob("s*")):
        match = re.fullmatch(r"s(\d+)", folder.name)
        agm = root / "live" / "agm" / folder.name
        if match and (agm / "plots").is_dir() and (folder / "plots").is_dir():
            found[int(match.group(1))] = {"agm": read_live_curves(agm), "no_detach": read_live_curves(folder)}
    return found


def max_relative_gap(no_detach: pd.DataFrame, agm: pd.DataFrame, key: str, reached: int) -> float:
    """max over the steps both runs logged (≤ ``reached``) of |nd − agm| / agm for ``key``, each curve smoothed
    as the collapse rule smooths it: how far apart the two runs ever were."""
    nd = no_detach[no_detach["step"] <= reached].sort_values("step").set_index("step")[key]
    ref = agm[agm["step"] <= reached].sort_values("step").set_index("step")[key]
    shared = nd.index.intersection(ref.index)
    smooth_nd, smooth_ref = collapse_smooth(nd.loc[shared]).to_numpy(), collapse_smooth(ref.loc[shared]).to_numpy()
    return float(np.max(np.abs(smooth_nd - smooth_ref) / np.abs(smooth_ref)))


def collapse_rows(curves: dict[int, dict[str, pd.DataFrame]], margin: float) -> pd.DataFrame:
    """One row per seed: the steps both runs reached, the collapse step (empty: none) and the rule's reason, how far
    apart the runs' smoothed losses ever were (:func:`max_relative_gap`), and each run's mean drift and potential
    loss (and max/min weight ratio, where logged) over the last tenth of those steps."""
    rows = []
    for seed, pair in sorted(curves.items()):
        reached = int(min(pair["agm"]["step"].max(), pair["no_detach"]["step"].max()))
        nd = pair["no_detach"][pair["no_detach"]["step"] <= reached]
        c = collapse_step(nd, pair["agm"], margin)
        row = {"seed": seed, "steps_reached": reached, "collapse_step": c.step, "reason": c.reason,
               "verdict": describe_collapse(c)}
        for key in ("drift_loss", "potential_loss"):
            row[f"max_relative_gap_{key}"] = max_relative_gap(pair["no_detach"], pair["agm"], key, reached)
        for model, df in pair.items():
            tail = df[(df["step"] > 0.9 * reached) & (df["step"] <= reached)]
            for key in ("drift_loss", "potential_loss", "w_ratio"):
                if key in tail:
                    row[f"{model}_{key}_last10pct"] = float(tail[key].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def plot(curves: dict[int, dict[str, pd.DataFrame]], path: Path, margin: float) -> None:
    """Drift loss (top, log y) and potential loss (bottom) of AGM (solid) and no_detach (dashed, so equal curves stay
    visible), one column per seed, smoothed as the collapse rule smooths them; the grey line is L_V = 2m, the
    uninformative V ≡ 0."""
    seeds = sorted(curves)
    fig, axes = plt.subplots(2, len(seeds), figsize=(4 * len(seeds), 6), squeeze=False, sharex=True,
                             layout="constrained")
    for j, seed in enumerate(seeds):
        for model, color, style in (("agm", "tab:blue", "-"), ("no_detach", "tab:red", "--")):
            df = curves[seed][model].sort_values("step")
            for i, key in enumerate(("drift_loss", "potential_loss")):
                axes[i, j].plot(df["step"], df[key], color=color, alpha=0.2, linewidth=0.6)
                axes[i, j].plot(df["step"], collapse_smooth(df[key]), color=color, linestyle=style, label=model)
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"seed {seed}: drift loss $L_f$")
        axes[1, j].axhline(2 * margin, color="grey", linestyle=":", linewidth=1, label="2m (V ≡ 0)")
        axes[1, j].set_title(f"seed {seed}: potential loss $L_V$")
        axes[1, j].set_xlabel("training step")
        axes[0, j].legend()
        axes[1, j].legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="CSV: one row per seed")
    ap.add_argument("--curves-out", help="CSV of every logged step of both runs of every seed")
    ap.add_argument("--figure", help="PNG of both losses per seed")
    ap.add_argument("--margin", type=float, help="the hinge margin m of L_V (default: potential.margin of the first "
                                                   "ROOT's params.yaml)")
    ap.add_argument("roots", nargs="+", type=Path,
                    help="workspaces holding live/agm/s<seed> and live/no_detach/s<seed>")
    args = ap.parse_args()
    margin = args.margin
    if margin is None:
        margin = float(yaml.safe_load((args.roots[0] / "params.yaml").read_text())["potential"]["margin"])
    curves: dict[int, dict[str, pd.DataFrame]] = {}
    for root in args.roots:
        for seed, pair in seed_curves(root).items():
            if seed in curves:
                raise SystemExit(f"error: seed {seed} is in more than one ROOT")
            curves[seed] = pair
    if not curves:
        raise SystemExit("error: no ROOT holds both live/agm/s<seed> and live/no_detach/s<seed>")
    rows = collapse_rows(curves, margin)
    rows.to_csv(args.out, index=False)
    print(rows[["seed", "steps_reached", "collapse_step", "verdict"]].to_string(index=False))
    if args.curves_out:
        pd.concat([df.assign(model=model, seed=seed) for seed, pair in sorted(curves.items())
                   for model, df in pair.items()]).to_csv(args.curves_out, index=False)
    if args.figure:
        plot(curves, Path(args.figure), margin)


if __name__ == "__main__":
    main()
