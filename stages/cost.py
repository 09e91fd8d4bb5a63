"""Stage `cost`: FLOPs of one training step per image for the baseline and AGM at this run's sizes
(agm.report.flops), written as metrics: `dvc metrics diff` shows how a model change moves the cost, and the
report's cost table reads it instead of building trainers itself."""

from __future__ import annotations

import argparse

from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.report.flops import COUNTED, FLOP_BATCH, flops_per_image
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True, help="metrics JSON")
    args = ap.parse_args()
    params = load_params(args.params, ["lambda", "seed", "seeds", "data", "bridge", "model", "potential", "train"])
    seed = params.seeds[0]
    flops = {m: flops_per_image(params, m, seed) for m in COUNTED}
    write_json(args.out, {"flops_per_image": flops,
                          "gflop_per_image": {m: round(f / 1e9, 6) for m, f in flops.items()},
                          "agm_over_baseline": round(flops["agm"] / flops["baseline"], 6),
                          "counted_at_batch": FLOP_BATCH, "seed": seed})
    print(f"cost: AGM {flops['agm'] / flops['baseline']:.3f} x the baseline's FLOPs per image")


if __name__ == "__main__":
    run(main)
