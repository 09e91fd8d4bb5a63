"""What a DVC stage reads, as DVC hashes it: so a long job records the inputs it trained on, not later ones.

    python scripts/cluster/stage_inputs.py save STAGE FILE         # at job start: cmd, deps and params now
    python scripts/cluster/stage_inputs.py check STAGE FILE        # before `dvc commit`: are they still those?
    python scripts/cluster/stage_inputs.py check --lock STAGE FILE # after: does dvc.lock record those?

`dvc commit` hashes a stage's deps and params when it runs, so after a multi-day job it would record
whatever the checkout holds then (an edited params.yaml, a pulled commit) as what produced the outputs.
`save` writes the stage's command and the hash DVC gives each dep (md5 of a file, of a folder's listing)
and each params file (the values of the declared keys) at the start; `check` compares them with the
same now, or with what dvc.lock holds for the stage, and exits 1 naming each difference.
scripts/cluster/slurm_multinode_train.sbatch runs all three around each stage it trains.

Uses DVC's Python API (``Repo.stage.collect``, ``Dependency.get_hash``) of the dvc version pinned in
requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _collect(target: str) -> Any:
    from dvc.repo import Repo

    repo = Repo()
    stages = repo.stage.collect(target)
    if len(stages) != 1:
        raise SystemExit(f"error: {target!r} names {len(stages)} stages, not one")
    return stages[0]


def stage_inputs(target: str, *, lock: bool = False) -> dict[str, Any]:
    """``{"cmd": ..., "<dep path>": <its hash>, ...}`` of one stage: hashed now, or (``lock``) as dvc.lock
    records them (an empty hash where dvc.lock has no entry for the stage or the dep)."""
    stage = _collect(target)
    inputs: dict[str, Any] = {"cmd": stage.cmd}
    for dep in stage.deps:
        info = dep.hash_info if lock else dep.get_hash()
        inputs[str(dep.def_path)] = info.to_dict() if info else {}
    return json.loads(json.dumps(inputs, sort_keys=True, default=str))


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per input whose hash differs (for a params file, per differing key)."""
    lines = []
    for name in sorted(set(saved) | set(now)):
        a, b = saved.get(name), now.get(name)
        if a == b:
            continue
        params_a, params_b = (x.get("params") if isinstance(x, dict) else None for x in (a, b))
        if isinstance(params_a, dict) and isinstance(params_b, dict):
            for key in sorted(set(params_a) | set(params_b)):
                if params_a.get(key) != params_b.get(key):
                    lines.append(f"{name}: {key}: {params_a.get(key)!r} -> {params_b.get(key)!r}")
        else:
            lines.append(f"{name}: {a!r} -> {b!r}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("save", "check"))
    ap.add_argument("--lock", action="store_true", help="check: compare with what dvc.lock records")
    ap.add_argument("stage")
    ap.add_argument("file")
    args = ap.parse_args()
    if args.action == "save":
        Path(args.file).write_text(json.dumps(stage_inputs(args.stage), indent=1, sort_keys=True) + "\n")
        return
    saved = json.loads(Path(args.file).read_text())
    lines = differences(saved, stage_inputs(args.stage, lock=args.lock))
    if lines:
        where = "dvc.lock records" if args.lock else "the checkout holds"
        print(f"{args.stage}: {where} other inputs than at the start:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
