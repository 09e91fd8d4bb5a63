"""Stage `publish`: the git-tracked copy of an expensive stage's small results.

The train and steps stages write everything they produce into cached DVC outputs (``logs/``): the run-cache
saves them, `dvc push --run-cache` sends their objects to a remote, and a collaborator's `dvc exp run` of an
experiment pushed there restores the stages instead of training again. A cached output is not in git, though,
and `dvc metrics diff` / `dvc plots diff` across commits read the files git holds. This cheap stage copies the
dvclive log (``live/<model>/s<seed>``) and the metric-vs-steps curve (``steps/<model>/s<seed>.csv``) to
uncached metrics and plots outputs that are committed with dvc.lock.

    python -m stages.publish --copy logs/train/agm/s0 live/agm/s0 --copy logs/steps/agm/s0.csv steps/agm/s0.csv
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from agm.config.errors import DataError
from agm.io.atomic import atomic_dir, atomic_path
from stages import run


def publish(src: Path, dst: Path) -> None:
    """Copy the file or folder ``src`` onto ``dst``, atomically (a folder replaces ``dst`` whole)."""
    if src.is_dir():
        with atomic_dir(dst) as tmp:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
    elif src.is_file():
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    else:
        raise DataError(f"publish: {src} does not exist")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copy", nargs=2, action="append", required=True, metavar=("SRC", "DST"),
                    help="a cached output (file or folder) and its git-tracked copy; repeatable")
    args = ap.parse_args()
    pairs = [(Path(s), Path(d)) for s, d in args.copy]
    for src, _ in pairs:  # every source before any copy: nothing half-published
        if not src.exists():
            raise DataError(f"publish: {src} does not exist")
    for src, dst in pairs:
        publish(src, dst)
        print(f"publish: {src} -> {dst}")


if __name__ == "__main__":
    run(main)
