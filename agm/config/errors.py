"""The errors a user can fix from the message alone, and how a command line reports them.

Each is raised with a one-line message that names the key, file, folder or count at fault; a stage or tool
run through :func:`run_main` prints ``error: <that line>`` and exits with code 2, no traceback. The
Inception weights' errors (agm.math.metrics.inception) are ``FileNotFoundError``s, reported the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class ParamsError(ValueError):
    """A bad params file: the message names the key and the allowed values."""


class DataError(ValueError):
    """Bad or missing data; the message is one line naming the file, folder or count."""


class StaleFeaturesError(DataError):
    """Cached features do not match the configuration: another feature space, or other extractor weights than
    the configured file holds now. A user error (one line): re-run the features stage."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's stored configuration differs from the run's."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ParamsError, DataError, CheckpointMismatchError, FileNotFoundError,
)
"""Errors a user can fix from the message alone: one line, exit code 2."""


def exception_summary(exc: BaseException, limit: int | None = None, first_line: bool = False) -> str:
    """``"Type: message"`` with the message's whitespace (newlines included) folded to single spaces, or only
    its first line (``first_line``: a compiler's traceback), cut to ``limit`` characters if given; just
    ``"Type"`` for an empty message."""
    message = str(exc).strip()
    text = " ".join((message.splitlines()[:1] if first_line else [message])[0].split()) if message else ""
    if limit is not None:
        text = text[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_main(main: Callable[[], None]) -> None:
    """Call ``main``; turn a user error into ``error: <one line>`` on stderr and exit code 2."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
