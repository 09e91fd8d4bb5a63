"""Where the default profile's metric spread comes from: sample set, training seed, feature network; and FD's bias.

Inputs: many (model, seed) sample sets of one size N (``--samples``: an .npz with arrays ``<model>_s<seed>``,
uint8 (N, C, H, W), as ``scripts/gpu_check.sh`` writes in its extra_seeds section, or ``samples/<model>/s<seed>/
samples.npy`` gathered the same way), the prepared data (``--train``, ``--heldout``) and the eval params.
For the first feature network (``--feature-seeds``: a digit classifier trained per seed, as the features stage
does) and every n in ``--sizes`` (the other networks: the largest n only), each sample set is cut into N // n
disjoint subsets of n, and every subset is scored:
Fréchet distance, kernel distance, precision, recall (agm/math/metrics). One CSV row per scored subset (--out), so
the summary (``--summary``) is a pure function of that file:

All but the last use the first feature network.
- sample-set SD at n: the SD over the disjoint subsets of one (model, seed, feature net), averaged (root mean
  square) over the sample sets;
- training-seed SD at n: the SD over seeds of each (model, feature net)'s first subset;
- paired SD at n: the SD over seeds of AGM − baseline on the first subset (what a paired comparison carries);
- feature-net SD: the SD over feature networks of one sample set's first subset at the largest n;
- bias at n: mean FD (or KD) at n minus the mean at the largest n.

    python -m tools.power_decomposition --samples extra_seeds_samples.npz \
        --train data/prepared/train.npz --heldout data/prepared/heldout.npz --params params.yaml \
        --out docs/results/power/decomposition_rows.csv --summary docs/results/power/decomposition.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agm.config.params import load_params
from agm.io.data import load_image_set
from agm.math.metrics import extract_features, train_feature_net
from agm.math.metrics.frechet import frechet_distance
from agm.math.metrics.kernel import KERNEL_SEED, kernel_distance
from agm.math.metrics.precision_recall import precision_recall

METRICS = ("fd", "kd", "precision", "recall")


def score_rows(samples: dict[str, np.ndarray], real_images: np.ndarray, labels: np.ndarray,
               heldout: tuple[np.ndarray, np.ndarray], feature_seeds: list[int], sizes: list[int], *, epochs: int,
               lr: float, k: int, kd_subsets: int) -> pd.DataFrame:
    rows = []
    for fseed in feature_seeds:
        net = train_feature_net(real_images, labels, epochs=epochs, batch_size=64, lr=lr, seed=fseed,
                                heldout_images=heldout[0], heldout_labels=heldout[1]).model
        real = extract_features(net, real_images, batch_size=1000)
        ref_heldout = extract_features(net, heldout[0], batch_size=1000)
        rows.append({"feature_seed": fseed, "model": "real_heldout", "seed": -1, "n": len(ref_heldout), "subset": 0,
                     **_score(real, ref_heldout, k, kd_subsets)})
        for key, images in samples.items():
            model, seed = key.rsplit("_s", 1)
            feats = extract_features(net, images, batch_size=1000)
            for n in sizes if fseed == feature_seeds[0] else [max(sizes)]:  # the others: the largest n only
                for j in range(len(feats) // n):
                    t0 = time.perf_counter()
                    rows.append({"feature_seed": fseed, "model": model, "seed": int(seed), "n": n, "subset": j,
                                 **_score(real, feats[j * n:(j + 1) * n], k, kd_subsets),
                                 "seconds": round(time.perf_counter() - t0, 2)})
            print(f"feature net {fseed}: {key} scored at n = {sizes}", flush=True)
    return pd.DataFrame(rows)


def _score(real: np.ndarray, fake: np.ndarray, k: int, kd_subsets: int) -> dict[str, float]:
    pr = precision_recall(real, fake, k=k)
    return {"fd": frechet_distance(real, fake), "kd": kernel_distance(real, fake, seed=KERNEL_SEED,
                                                                       num_subsets=kd_subsets),
            "precision": pr.precision, "recall": pr.recall}


def _rms(x: pd.Series) -> float:
    return float(np.sqrt(np.nanmean(np.square(x)))) if len(x) else float("nan")


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, n): the SD components and the bias (see the module docstring)."""
    every_net = rows[rows.model != "real_heldout"]
    gen = every_net[every_net.feature_seed == every_net.feature_seed.iloc[0]]  # all sizes: the first network
    top = gen.n.max()
    out = []
    for metric in METRICS:
        for n, at_n in gen.groupby("n"):
            first = at_n[at_n.subset == 0]
            sample_sd = _rms(at_n.groupby(["feature_seed", "model", "seed"])[metric].std(ddof=1).dropna())
            seed_sd = _rms(first.groupby(["feature_seed", "model"])[metric].std(ddof=1))
            wide = first.pivot_table(index=["feature_seed", "seed"], columns="model", values=metric)
            paired = wide["agm"] - wide["baseline"] if {"agm", "baseline"} <= set(wide.columns) else pd.Series([])
            paired_sd = _rms(paired.groupby(level="feature_seed").std(ddof=1)) if len(paired) else float("nan")
            out.append({"metric": metric, "n": n, "sample_sets": at_n.groupby(["model", "seed"]).ngroups,
                        "subsets_per_set": int(at_n.subset.max()) + 1, "mean": float(at_n[metric].mean()),
                        "bias_vs_largest_n": float(at_n[metric].mean() - gen[gen.n == top][metric].mean()),
                        "sample_set_sd": sample_sd,
                        "training_seed_sd": seed_sd, "paired_sd": paired_sd,
                        "paired_mean": float(paired.mean()) if len(paired) else float("nan")})
        at_top = every_net[(every_net.n == top) & (every_net.subset == 0)]
        fsd = at_top.groupby(["model", "seed"])[metric].std(ddof=1)
        for row in out:
            if row["metric"] == metric:
                row["feature_net_sd_at_largest_n"] = _rms(fsd.dropna()) if at_top.feature_seed.nunique() > 1 else None
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", help=".npz of uint8 sample sets <model>_s<seed>")
    ap.add_argument("--rows-in", help="summarize these per-subset rows (an earlier --out) instead of scoring")
    ap.add_argument("--train")
    ap.add_argument("--heldout")
    ap.add_argument("--params")
    ap.add_argument("--feature-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    ap.add_argument("--kd-subsets", type=int, default=100, help="kernel-distance subsets (clean-fid's default: 100)")
    ap.add_argument("--out", help="per-subset rows .csv (scoring)")
    ap.add_argument("--summary", required=True, help="summary .csv")
    args = ap.parse_args()
    if args.rows_in:
        summary = summarize(pd.read_csv(args.rows_in))
        summary.to_csv(args.summary, index=False, float_format="%.5g")
        print(summary.to_string())
        return
    if not (args.samples and args.train and args.heldout and args.params):
        ap.error("scoring needs --samples, --train, --heldout and --params")
    eval_params = load_params(args.params, ["eval"]).eval
    train, heldout = load_image_set(args.train), load_image_set(args.heldout)
    with np.load(args.samples) as npz:
        samples = {key: npz[key] for key in sorted(npz.files)}
    rows = score_rows(samples, train.images, train.labels, (heldout.images, heldout.labels), args.feature_seeds,
                      args.sizes, epochs=eval_params.feature_net_epochs, lr=eval_params.feature_net_lr,
                      k=eval_params.k, kd_subsets=args.kd_subsets)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False, float_format="%.6g")
    summary = summarize(rows)
    summary.to_csv(args.summary, index=False, float_format="%.5g")
    print(summary.to_string())


if __name__ == "__main__":
    main()
