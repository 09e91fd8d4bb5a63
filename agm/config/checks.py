"""Reading a params file and one-line checks of its values, used by agm.config.params at the edge: each error
names the file or key and what is allowed."""

from __future__ import annotations

import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from agm.config.errors import ParamsError


def convert(key: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{key} must be a list of {len(args)} values, got {list(value)}")
        return tuple(convert(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported params type {hint}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {hint}")


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> None:
    bad = math.isnan(value) or (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi)))
    if bad:
        left = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        right = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
        allowed = " and ".join(s for s in (left, right) if s)
        raise ParamsError(f"{key} must be {allowed}, got {value}")


def check_choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ParamsError(f"{key} must be one of {list(allowed)}, got {value!r}")


def check_device(key: str, value: str) -> None:
    kind, _, index = value.partition(":")
    if value != "auto" and (kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit()))):
        raise ParamsError(f"{key} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML mapping, with one-line errors for a missing file or bad YAML."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{where}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of keys at the top level")
    return raw
