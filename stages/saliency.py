"""Stage `saliency`: Fig. 5, the trained potential's saliency |∇ₓV| on bridge samples, as a PNG and its data.

Reads the AGM model of the first seed and the real training images; writes ``fig5_saliency.png``, its table
(``fig5_saliency.csv``: the saliency's mean, max and centre share per t and image), its arrays (``.npz``) and
``fig5_saliency.json`` (which model, seed and times; ``potential: false`` and nothing else for a model without a
V, e.g. AGM at λ = 0) into one folder that the report reads (agm.report.saliency).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agm.config.params import load_params
from agm.io.atomic import atomic_dir, write_json
from agm.io.data import load_image_set
from agm.models.files import has_potential
from agm.report.saliency import SALIENCY_TIMES, write_saliency
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--model", required=True, help="the first seed's AGM model.pt")
    ap.add_argument("--real", required=True, help="training ImageSet .npz")
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args()
    params = load_params(args.params, ["seed", "bridge"])
    model = Path(args.model)
    potential = has_potential(model)
    with atomic_dir(args.out) as out:
        if potential:
            write_saliency(model, load_image_set(args.real).images, params.bridge.sigma_max, params.bridge.schedule,
                           params.seed, out)
        write_json(out / "fig5_saliency.json", {"model": model.as_posix(), "potential": potential,
                                                "times": list(SALIENCY_TIMES), "seed": params.seed})
    print(f"saliency: {args.out}" + ("" if potential else f" ({model} has no potential V: no Fig. 5)"))


if __name__ == "__main__":
    run(main)
