"""Stage `source`: what the images of `data.source` are, by content (agm.io.provenance.source_manifest).

DVC tracks files in the workspace only; an image folder or a `save_to_disk` folder elsewhere is not one.
This stage hashes it (or scikit-learn's digits file) at every `dvc repro` (`always_changed` in dvc.yaml)
and writes the result, a dep of `prepare`: prepare re-runs when the images or the libraries that prepare
them change, and the later stages only when the prepared arrays do.
"""

from __future__ import annotations

import argparse

from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.io.provenance import source_manifest
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True, help="the manifest (JSON)")
    args = ap.parse_args()
    data = load_params(args.params, ["data"]).data
    manifest = source_manifest(data.source, data.name, data.path)
    write_json(args.out, manifest)
    print(f"source: {data.source}, sha256 {manifest['sha256']}")


if __name__ == "__main__":
    run(main)
