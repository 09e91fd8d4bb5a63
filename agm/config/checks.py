"""One-line checks of params values, used by agm.config.params at the edge: each error names the key and what
is allowed."""

from __future__ import annotations

import math
import types
import typing
from typing import Any, Literal

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
