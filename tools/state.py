"""`python -m tools.state`: list or prune the training runs' resume state (agm.training.run_state). Not a DVC stage.

    python -m tools.state list                          # every state folder: size, last write, name
    python -m tools.state prune --older-than-days 30    # remove folders last written over 30 days ago
    python -m tools.state prune --max-gb 50 --dry-run   # what keeping 50 GB (newest first) would remove

The folders live under $AGM_STATE_DIR, else .agm_state/ in the workspace. A folder whose run is training
(locked) is never removed; removing one only means that run, if DVC has not kept its outputs, trains again.
"""

from __future__ import annotations

import argparse
import time

from agm.config.errors import ParamsError, run_main
from agm.training.run_state import prune, state_folders, state_root


def _row(size: int, last_write: float, name: str) -> str:
    age = (time.time() - last_write) / 86400
    return f"{size / 2**20:10.1f} MiB  {age:7.1f} days ago  {name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every state folder")
    pr = sub.add_parser("prune", help="remove state folders by age or to fit a size")
    pr.add_argument("--older-than-days", type=float, help="remove folders last written longer ago than this")
    pr.add_argument("--max-gb", type=float, help="then remove the least recently written until the rest fit")
    pr.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    args = ap.parse_args()
    root = state_root()
    if args.command == "list":
        folders = state_folders(root)
        for f in folders:
            print(_row(f.size, f.last_write, f.path.name))
        print(f"{len(folders)} state folders, {sum(f.size for f in folders) / 2**30:.2f} GiB, in {root}")
        return
    if args.older_than_days is None and args.max_gb is None:
        raise ParamsError("prune needs --older-than-days or --max-gb (or both)")
    for key, value in (("--older-than-days", args.older_than_days), ("--max-gb", args.max_gb)):
        if value is not None and value < 0:
            raise ParamsError(f"{key} must be >= 0, got {value}")
    result = prune(root, older_than_s=None if args.older_than_days is None else args.older_than_days * 86400,
                   max_bytes=None if args.max_gb is None else int(args.max_gb * 2**30), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for f in result.removed:
        print(f"{verb}: {_row(f.size, f.last_write, f.path.name)}")
    for f in result.busy:
        print(f"kept, a run holds its lock: {_row(f.size, f.last_write, f.path.name)}")
    print(f"{verb} {len(result.removed)} state folders ({sum(f.size for f in result.removed) / 2**30:.2f} GiB) "
          f"in {root}")


if __name__ == "__main__":
    run_main(main)
