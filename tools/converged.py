"""The learning curve to convergence: score long runs' EMA snapshots at the final evaluation's sample count.

``score`` walks a folder of training state (agm.training.run_state: one folder per run, with ``identity.json`` and
the EMA snapshots ``ema_<step>.pt`` the train stage keeps every ``train.snapshot_every`` steps), and for every run
and every requested step draws ``--samples`` images (default 10,000) with the run's seed's sampling noise (the
sample stage's batches, agm.models.samples), then writes one row per (arm, seed, step) to ``--out``:

- the sample quality against the training images' features (the evaluate stage's metrics: fd_digits, kd_digits,
  precision, recall) and the Fréchet distance to the held-out images' features (``fd_heldout``), beside it;
- memorisation (agm.math.memorisation), in pixels (``px_*``) and in the feature space (``feat_*``): how
  close samples come to their nearest training image against the nearest held-out one.

Rows already in ``--out`` are skipped and each new row is written as soon as it is scored (atomically), so the
tool can run while the runs train, be killed, and run again. The arm of a run is its variant, with λ for a
variant with a potential (``agm_l0.1``). ``summarize`` averages the rows over seeds (agm.report.convergence):
curve.csv, every arm − the baseline paired by seed at each step (paired.csv), the doubling gains and the plateau
length of each arm (on the seeds that reached every step of it), the held-out images' own memorisation
reference, and a figure.

    python -m tools.converged score --state .agm_state --features data/features --train data/prepared/train.npz \
        --heldout data/prepared/heldout.npz --params params.yaml --steps 1000 2000 4000 8000 16000 \
        --out docs/results/converged/runs.csv
    python -m tools.converged summarize --runs docs/results/converged/runs.csv --train data/prepared/train.npz \
        --heldout data/prepared/heldout.npz --features data/features --out docs/results/converged
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from agm.config.params import load_params
from agm.io.atomic import atomic_path, write_json
from agm.io.data import load_image_set
from agm.math.memorisation import memorisation, real_reference
from agm.math.metrics.features_io import load_features
from agm.math.metrics.frechet import frechet_distance
from agm.math.metrics.kernel import KERNEL_SEED
from agm.math.metrics.sample_quality import DISTANCE_NAMES, feature_extractor, load_real_features, sample_quality
from agm.math.nets import DriftUNet
from agm.models.samples import cpu_workers, gathered_samples
from agm.report.convergence import curve_table, doubling_gains, paired_to_reference, plateau_length
from agm.training.checkpoints import load_checkpoint

MEMORISATION_SEED = 0
"""Seed of the equal-size subset of the training set the memorisation ratios compare with (one fixed draw)."""


def arm_of(identity: dict) -> str:
    """A run's arm: its variant, with λ where it trains a potential (``agm_l0.1``)."""
    lam = identity.get("lambda")
    return identity["variant"] if lam is None else f"{identity['variant']}_l{lam:g}"


def pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) → float64 (N, C·H·W) in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def _write(rows: list[dict], out: Path) -> None:
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")


def score(args: argparse.Namespace) -> None:
    params = load_params(args.params, ["sample", "eval"])
    sample, ev = params.sample, params.eval
    space = ev.feature_space
    real = load_real_features(args.features, space, ev.inception_weights).features
    held_feat = load_features(Path(args.features) / "heldout.npz").features
    train_px = pixels(load_image_set(args.train).images)
    held_px = pixels(load_image_set(args.heldout).images)
    extract = feature_extractor(space, feature_net=Path(args.features) / "net.pt",
                                inception_weights=ev.inception_weights, batch_size=ev.batch_size)
    out = Path(args.out)
    rows = pd.read_csv(out).to_dict("records") if out.exists() else []
    done = {(r["arm"], int(r["seed"]), int(r["step"])) for r in rows}
    n = args.samples
    for folder in sorted(p for p in Path(args.state).iterdir() if (p / "identity.json").is_file()):
        identity = json.loads((folder / "identity.json").read_text())
        arm, seed = arm_of(identity), int(identity["seed"])
        if args.arms and arm not in args.arms:
            continue
        for step in args.steps:
            snap = folder / f"ema_{step:08d}.pt"
            if (arm, seed, step) in done or not snap.is_file():
                continue
            t0 = time.perf_counter()
            ck = load_checkpoint(snap)
            f = DriftUNet(**ck["config"]["model"])
            f.load_state_dict(ck["ema"])
            f.eval().requires_grad_(False)
            shape = (f.in_channels, f.resolution, f.resolution)
            with torch.no_grad():
                images = np.concatenate([x for _, x in gathered_samples(
                    f, n, sample.batch_size, shape, sample.nfe, sample.g, seed, "cpu", cpu_workers("cpu"))])
            fake = extract(images)
            q = sample_quality(real, fake, k=ev.k, kernel_seed=KERNEL_SEED)
            px = memorisation(pixels(images), train_px, held_px, seed=MEMORISATION_SEED)
            feat = memorisation(fake, real, held_feat, seed=MEMORISATION_SEED)
            row = {"arm": arm, "variant": identity["variant"], "lambda": identity.get("lambda", 0.0),
                   "seed": seed, "step": step, **q.record(space, ndigits=None),
                   f"{DISTANCE_NAMES[space]}_heldout": frechet_distance(held_feat, fake),
                   **px.record("px_"), **feat.record("feat_"), "n_samples": n, "nfe": sample.nfe,
                   "run_steps": identity["train"]["steps"], "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            done.add((arm, seed, step))
            _write(rows, out)
            print(f"converged: {arm} seed {seed} step {step}: {DISTANCE_NAMES[space]} {q.distance:.3f}, "
                  f"precision {q.precision:.3f}, px copy share {px.copy_share:.4f}, "
                  f"px train/held-out {px.train_heldout_ratio:.3f} ({row['seconds']} s)", flush=True)


METRICS = ("fd_digits", "kd_digits", "precision", "recall", "fd_digits_heldout", "px_nn_train_median",
           "px_copy_share", "px_train_heldout_ratio", "px_closer_to_train_share", "feat_nn_train_median",
           "feat_copy_share", "feat_train_heldout_ratio", "feat_closer_to_train_share")


def summarize(args: argparse.Namespace) -> None:
    runs = pd.read_csv(args.runs)
    out = Path(args.out)
    metrics = [m for m in METRICS if m in runs.columns]
    curve = curve_table(runs, metrics)
    with atomic_path(out / "curve.csv") as tmp:
        curve.to_csv(tmp, index=False, float_format="%.6g")
    paired = paired_to_reference(runs, ["fd_digits", "kd_digits", "precision", "recall"])
    with atomic_path(out / "paired.csv") as tmp:
        paired.to_csv(tmp, index=False, float_format="%.6g")
    plateau: dict[str, dict] = {}
    for arm, arm_runs in runs.groupby("arm"):
        # the doublings on the seeds that reached every step of the arm, so no mean mixes other seeds' levels
        grid = sorted(set(arm_runs.step))
        complete = [s for s, g in arm_runs.groupby("seed") if sorted(g.step) == grid]
        if not complete:
            continue
        group = curve_table(arm_runs[arm_runs.seed.isin(complete)], ["fd_digits"]).sort_values("step")
        steps, fd = list(group["step"]), list(group["fd_digits"])
        plateau[arm] = {"seeds": [int(s) for s in complete],
                        "doublings": [{"step": d.step, "fd_digits": round(d.value, 4),
                                       "fd_digits_doubled": round(d.value_doubled, 4), "gain": round(d.gain, 4)}
                                      for d in doubling_gains(steps, fd)],
                        "plateau_length_5pct": plateau_length(steps, fd, 0.05),
                        "plateau_length_10pct": plateau_length(steps, fd, 0.10)}
    train, held = load_image_set(args.train).images, load_image_set(args.heldout).images
    reference = {"pixels": real_reference(pixels(train), pixels(held), seed=MEMORISATION_SEED).record(""),
                 "features": real_reference(load_features(Path(args.features) / "train.npz").features,
                                            load_features(Path(args.features) / "heldout.npz").features,
                                            seed=MEMORISATION_SEED).record("")}
    write_json(out / "plateau.json", {"arms": plateau, "heldout_reference": reference})
    figure(curve, out / "curve.png", reference["pixels"])
    with atomic_path(out / "tables.md") as tmp:
        tmp.write_text(tables_md(curve, paired, plateau, reference))
    print(json.dumps(plateau, indent=1))


def _pm(mean: float, hw: float, digits: int) -> str:
    return f"{mean:.{digits}f}" if math.isnan(hw) else f"{mean:.{digits}f} ± {hw:.{digits}f}"


def tables_md(curve: pd.DataFrame, paired: pd.DataFrame, plateau: dict, reference: dict) -> str:
    """The curve, the doublings, the paired differences and the held-out reference as Markdown tables, written from
    the CSVs by ``summarize`` (so no number in them is typed by hand)."""
    lines = ["# Tables (written by `python -m tools.converged summarize`)", "",
             "Mean ± 95% t-interval half-width over seeds; 10,000 samples per model at NFE 40, each seed's own "
             "sampling noise. `px_nn_train` is the median distance of a sample to its nearest training image in "
             "pixels ([0, 1] scale, 64 pixels); `ratio` the equal-size train/held-out distance ratio; `copies` the "
             "share of samples with d1 < d2 / 3.", "",
             "| arm | steps | seeds | fd_digits | kd_digits | precision | recall | px_nn_train | ratio | copies |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in curve.sort_values(["arm", "step"]).itertuples():
        lines.append(f"| {r.arm} | {r.step:,} | {r.n} | {_pm(r.fd_digits, r.fd_digits_hw, 3)} | "
                     f"{_pm(r.kd_digits, r.kd_digits_hw, 1)} | {_pm(r.precision, r.precision_hw, 3)} | "
                     f"{_pm(r.recall, r.recall_hw, 3)} | {_pm(r.px_nn_train_median, r.px_nn_train_median_hw, 3)} | "
                     f"{_pm(r.px_train_heldout_ratio, r.px_train_heldout_ratio_hw, 3)} | "
                     f"{r.px_copy_share:.4f} |")
    px = reference["pixels"]
    lines += ["", f"Held-out real images (359, never trained on), the same measures: px_nn_train "
              f"{px['nn_train_median']:.3f}, ratio {px['train_heldout_ratio']:.3f}, copies {px['copy_share']:.4f}.",
              "", "Doubling the steps, on the mean curve of the seeds that reached every step (gain = relative fall of "
              "fd_digits):", "",
              "| arm | seeds | from → to | fd_digits | gain | plateau (5%) | plateau (10%) |",
              "|---|---|---|---|---|---|---|"]
    for arm, p in plateau.items():
        for d in p["doublings"]:
            five, ten = (p[f"plateau_length_{k}pct"] or "not reached" for k in (5, 10))
            lines.append(f"| {arm} | {len(p['seeds'])} | {d['step']:,} → {2 * d['step']:,} | "
                         f"{d['fd_digits']:.3f} → {d['fd_digits_doubled']:.3f} | {100 * d['gain']:+.1f}% | "
                         f"{five} | {ten} |")
    if len(paired):
        lines += ["", "Each arm minus the same seed's baseline at the same step (paired, same sampling noise):", "",
                  "| arm | steps | seeds | Δ fd_digits | Δ kd_digits | Δ precision | Δ recall |",
                  "|---|---|---|---|---|---|---|"]
        for r in paired.sort_values(["arm", "step"]).itertuples():
            lines.append(f"| {r.arm} | {r.step:,} | {r.n} | {_pm(r.d_fd_digits, r.d_fd_digits_hw, 3)} | "
                         f"{_pm(r.d_kd_digits, r.d_kd_digits_hw, 1)} | {_pm(r.d_precision, r.d_precision_hw, 3)} | "
                         f"{_pm(r.d_recall, r.d_recall_hw, 3)} |")
    return "\n".join(lines) + "\n"


def figure(curve: pd.DataFrame, path: Path, reference: dict[str, float]) -> None:
    """fd_digits, precision, recall and the pixel-space memorisation measures against steps, mean ± 95% interval;
    the held-out images' own value of a memorisation measure (``reference``, :func:`real_reference`) as a dotted
    line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("fd_digits", "fd_digits (train features), lower is better"), ("precision", "precision"),
              ("recall", "recall"), ("px_nn_train_median", "pixels: median distance to the nearest training image"),
              ("px_train_heldout_ratio", "pixels: NN distance train / held-out (equal n)"),
              ("px_copy_share", "pixels: share of samples with d1 < d2 / 3")]
    panels = [(m, title) for m, title in panels if m in curve.columns]
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, (metric, title) in zip(axes.flat, panels):
        for arm, group in curve.groupby("arm"):
            group = group.sort_values("step")
            hw = group[f"{metric}_hw"].fillna(0.0)
            line, = ax.plot(group["step"], group[metric], marker="o", ms=3, label=f"{arm} (n={group['n'].max()})")
            ax.fill_between(group["step"], group[metric] - hw, group[metric] + hw, color=line.get_color(), alpha=0.2)
        if metric.startswith("px_") and metric[3:] in reference:
            ax.axhline(reference[metric[3:]], color="grey", ls=":", lw=1, label="held-out real images")
        ax.set_xscale("log", base=2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training steps")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    axes.flat[3].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score EMA snapshots of runs in a state folder")
    s.add_argument("--state", required=True, help="state root (AGM_STATE_DIR or .agm_state)")
    s.add_argument("--params", required=True, help="params file: sample and eval sections")
    s.add_argument("--features", required=True, help="the features stage's folder (train.npz, heldout.npz, net.pt)")
    s.add_argument("--train", required=True)
    s.add_argument("--heldout", required=True)
    s.add_argument("--steps", type=int, nargs="+", required=True)
    s.add_argument("--arms", nargs="*", help="only these arms (default: every run in --state)")
    s.add_argument("--samples", type=int, default=10_000)
    s.add_argument("--out", required=True, help="runs CSV (rows already there are kept and skipped)")
    m = sub.add_parser("summarize", help="curve.csv, plateau.json and curve.png from the runs CSV")
    m.add_argument("--runs", required=True)
    m.add_argument("--train", required=True)
    m.add_argument("--heldout", required=True)
    m.add_argument("--features", required=True)
    m.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    {"score": score, "summarize": summarize}[args.command](args)


if __name__ == "__main__":
    main()
