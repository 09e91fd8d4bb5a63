"""Stage `check`: the whole params file, validated before any stage does work.

Every key of every section, their ranges, and the rules that join sections (data.resolution against the U-Net's
depth and attention resolutions, train.batch_size against execution.nproc, train.snapshot_every against
train.steps, sample.num_samples and eval.snapshot_samples against eval.k) are checked by
agm.config.params.load_params, and each listed control against lambda (agm.variants: a control whose weights need
V refuses lambda = 0); the first bad value stops `dvc repro` here with one line naming it. Every stage descends
from this one (through `source`), so DVC runs it first; its output is the same file whenever the params are valid,
so a run of it after a param change triggers nothing downstream.
"""

from __future__ import annotations

import argparse

from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.variants import VARIANTS
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True, help="a constant marker: written only when the params are valid")
    args = ap.parse_args()
    params = load_params(args.params)
    for control in params.controls:  # what the control's train stage would refuse, after AGM had trained
        if hasattr(VARIANTS[control], "weighting_at"):
            VARIANTS[control].weighting_at(params)
    write_json(args.out, {"params": "valid"})
    print(f"check: {args.params} is valid")


if __name__ == "__main__":
    run(main)
