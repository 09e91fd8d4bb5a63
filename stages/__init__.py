"""Thin DVC stage entry points: parse paths, validate params, call `agm`, write outputs.

Run each as ``python -m stages.NAME``; every path comes from dvc.yaml.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from agm.checkpoint import CheckpointMismatchError
from agm.config import ParamsError
from agm.data import DataError

# Errors a user can fix from the message alone: print one line, exit 2, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ParamsError, DataError, CheckpointMismatchError, FileNotFoundError,
)


def run(main: Callable[[], None]) -> None:
    """Call ``main``; turn a user error into ``error: <one line>`` on stderr and exit code 2."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
