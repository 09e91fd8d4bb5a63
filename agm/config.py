"""params.yaml → typed, frozen, validated dataclasses, once, at the edge.

Every stage calls :func:`load_params` with the sections it reads. Unknown keys, missing keys, wrong
types and out-of-range values each raise :class:`ParamsError` with one line that names the key and what
is allowed, before any expensive work starts. The library never sees these objects' source file: stages
pass plain values on.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml


class ParamsError(ValueError):
    """A bad params file: the message names the key and the allowed values."""


# ---------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class DataParams:
    """Where the images come from (spec §7) and how they are prepared."""

    source: Literal["digits", "hf", "folder"]
    name: str  # HF dataset name or a save_to_disk folder (source: hf)
    path: str  # local image folder (source: folder)
    split: str
    image_column: str
    resolution: int
    channels: int
    holdout_fraction: float

    def check(self) -> None:
        _range("data.resolution", self.resolution, lo=4)
        _choice("data.channels", self.channels, (1, 3))
        _range("data.holdout_fraction", self.holdout_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if self.source == "folder" and not self.path:
            raise ParamsError("data.path must name an image folder when data.source is 'folder'")
        if self.source == "hf" and not self.name:
            raise ParamsError("data.name must name a dataset when data.source is 'hf'")


@dataclass(frozen=True)
class BridgeParams:
    """The bridge (spec §1)."""

    schedule: Literal["cosine", "cosine_squared"]
    sigma_max: float

    def check(self) -> None:
        _range("bridge.sigma_max", self.sigma_max, lo=0.0)


@dataclass(frozen=True)
class ModelParams:
    """The drift U-Net f_θ (spec §5)."""

    base_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    time_embed_dim: int
    head_channels: int
    dropout: float
    groups: int

    def check(self) -> None:
        _range("model.base_channels", self.base_channels, lo=1)
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ParamsError(
                f"model.channel_mult must be a non-empty list of ints >= 1, got {list(self.channel_mult)}")
        _range("model.num_res_blocks", self.num_res_blocks, lo=1)
        _range("model.time_embed_dim", self.time_embed_dim, lo=2)
        _range("model.head_channels", self.head_channels, lo=1)
        _range("model.dropout", self.dropout, lo=0.0, hi=1.0, hi_open=True)
        _range("model.groups", self.groups, lo=1)

    def check_resolution(self, resolution: int) -> None:
        factor = 2 ** (len(self.channel_mult) - 1)
        if resolution % factor:
            raise ParamsError(
                f"data.resolution {resolution} is not divisible by {factor}, the U-Net's downsampling for "
                f"model.channel_mult of length {len(self.channel_mult)}"
            )

    def kwargs(self, in_channels: int, resolution: int) -> dict[str, Any]:
        """Constructor arguments of :class:`agm.nets.DriftUNet`."""
        return dict(in_channels=in_channels, resolution=resolution, **dataclasses.asdict(self))


@dataclass(frozen=True)
class PotentialParams:
    """The potential V_φ, its loss (spec §2) and the importance weights (spec §3)."""

    widths: tuple[int, ...]
    pool: int
    groups: int
    margin: float
    mu: float
    lr: float
    clamp: tuple[float, float]

    def check(self) -> None:
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ParamsError(f"potential.widths must be three ints >= 1, got {list(self.widths)}")
        _range("potential.pool", self.pool, lo=1)
        _range("potential.groups", self.groups, lo=1)
        _range("potential.margin", self.margin, lo=0.0, lo_open=True)
        _range("potential.mu", self.mu, lo=0.0)
        _range("potential.lr", self.lr, lo=0.0, lo_open=True)
        lo, hi = self.clamp
        if not 0 < lo <= 1 <= hi:
            raise ParamsError(f"potential.clamp must be [min, max] with 0 < min <= 1 <= max, got {list(self.clamp)}")

    def net_kwargs(self, in_channels: int) -> dict[str, Any]:
        """Constructor arguments of :class:`agm.nets.Potential`."""
        return dict(in_channels=in_channels, widths=self.widths, pool=self.pool, groups=self.groups)


@dataclass(frozen=True)
class TrainParams:
    """The training loop (spec §4, §7)."""

    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float
    ema_decay: float
    amp: Literal["none", "bf16", "fp16"]
    compile: bool
    channels_last: bool
    device: str
    log_every: int
    checkpoint_every: int
    snapshot_every: int

    def check(self) -> None:
        _range("train.steps", self.steps, lo=1)
        _range("train.batch_size", self.batch_size, lo=1)
        _range("train.lr", self.lr, lo=0.0, lo_open=True)
        for i, b in enumerate(self.betas):
            _range(f"train.betas[{i}]", b, lo=0.0, hi=1.0, hi_open=True)
        _range("train.weight_decay", self.weight_decay, lo=0.0)
        _range("train.grad_clip", self.grad_clip, lo=0.0)
        _range("train.ema_decay", self.ema_decay, lo=0.0, hi=1.0, hi_open=True)
        _device("train.device", self.device)
        _range("train.log_every", self.log_every, lo=1)
        _range("train.checkpoint_every", self.checkpoint_every, lo=1)
        _range("train.snapshot_every", self.snapshot_every, lo=0)


@dataclass(frozen=True)
class SampleParams:
    """Euler–Maruyama sampling (spec §6)."""

    num_samples: int
    batch_size: int
    nfe: int
    g: float
    grid_nfe: int
    grid_size: int
    device: str

    def check(self) -> None:
        _range("sample.num_samples", self.num_samples, lo=1)
        _range("sample.batch_size", self.batch_size, lo=1)
        _range("sample.nfe", self.nfe, lo=1)
        _range("sample.g", self.g, lo=0.0)
        _range("sample.grid_nfe", self.grid_nfe, lo=1)
        _range("sample.grid_size", self.grid_size, lo=1)
        _device("sample.device", self.device)


@dataclass(frozen=True)
class EvalParams:
    """Evaluation (spec §8): the feature space, precision/recall k and the feature net."""

    feature_space: Literal["digits", "inception"]
    inception_weights: str
    k: int
    batch_size: int
    feature_net_epochs: int
    feature_net_lr: float
    snapshot_samples: int
    device: str

    def check(self) -> None:
        _range("eval.k", self.k, lo=1)
        _range("eval.batch_size", self.batch_size, lo=1)
        _range("eval.feature_net_epochs", self.feature_net_epochs, lo=1)
        _range("eval.feature_net_lr", self.feature_net_lr, lo=0.0, lo_open=True)
        _range("eval.snapshot_samples", self.snapshot_samples, lo=0)
        _device("eval.device", self.device)


SECTIONS: dict[str, type] = {
    "data": DataParams, "bridge": BridgeParams, "model": ModelParams, "potential": PotentialParams,
    "train": TrainParams, "sample": SampleParams, "eval": EvalParams,
}
TOP_LEVEL: dict[str, Any] = {"lambda": float, "seed": int, "seeds": tuple[int, ...], "controls": tuple[str, ...]}
CONTROLS = ("no_detach", "time_only", "action_matching")
"""Control models beside the baseline and AGM (issue 9), switched on by listing them in ``controls``."""


@dataclass(frozen=True)
class Params:
    """The validated params file; sections not asked for are None."""

    lam: float | None = None
    seed: int | None = None
    seeds: tuple[int, ...] | None = None
    controls: tuple[str, ...] | None = None
    data: DataParams | None = None
    bridge: BridgeParams | None = None
    model: ModelParams | None = None
    potential: PotentialParams | None = None
    train: TrainParams | None = None
    sample: SampleParams | None = None
    eval: EvalParams | None = None


def load_params(path: str | os.PathLike[str], sections: typing.Iterable[str] | None = None) -> Params:
    """Read and validate ``path``; only ``sections`` (default: all) are converted and checked.

    Unknown top-level keys are always an error, so a typo in any section name is caught by every stage.
    """
    raw = read_yaml(path)
    known = set(SECTIONS) | set(TOP_LEVEL)
    for key in raw:
        if key not in known:
            raise ParamsError(f"{path}: unknown key {key!r}; expected one of {sorted(known)}")
    wanted = list(sections) if sections is not None else [*TOP_LEVEL, *SECTIONS]
    out: dict[str, Any] = {}
    for name in wanted:
        if name not in raw:
            raise ParamsError(f"{path}: missing key {name!r}")
        if name in TOP_LEVEL:
            value = _convert(name, raw[name], TOP_LEVEL[name])
            _check_top_level(name, value)
            out["lam" if name == "lambda" else name] = value
        elif name in SECTIONS:
            out[name] = _section(name, raw[name], SECTIONS[name])
        else:
            raise KeyError(name)
    params = Params(**out)
    if params.model is not None and params.data is not None:
        params.model.check_resolution(params.data.resolution)
    return params


def _check_top_level(name: str, value: Any) -> None:
    if name == "lambda":
        _range("lambda", value, lo=0.0)
    elif name in ("seed", "seeds"):
        for i, seed in enumerate(value if name == "seeds" else [value]):
            _range(f"seeds[{i}]" if name == "seeds" else "seed", seed, lo=0)
    if name == "seeds" and (not value or len(set(value)) != len(value)):
        raise ParamsError(f"seeds must be a non-empty list of distinct integers, got {list(value)}")
    if name == "controls":
        for c in value:
            _choice("controls", c, CONTROLS)
        if len(set(value)) != len(value):
            raise ParamsError(f"controls lists a model twice: {list(value)}")


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


def _section(name: str, raw: Any, cls: type) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"{name} must be a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in hints:
            raise ParamsError(f"unknown key {name}.{key}; {name} takes {', '.join(fields)}")
    values = {}
    for key in fields:
        if key not in raw:
            raise ParamsError(f"missing key {name}.{key}")
        values[key] = _convert(f"{name}.{key}", raw[key], hints[key])
    obj = cls(**values)
    obj.check()
    return obj


def _convert(key: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{key} must be a list of {len(args)} values, got {list(value)}")
        return tuple(_convert(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
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


def _range(key: str, value: float, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> None:
    bad = math.isnan(value) or (lo is not None and (value < lo or (lo_open and value == lo))) or (
        hi is not None and (value > hi or (hi_open and value == hi)))
    if bad:
        left = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        right = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
        allowed = " and ".join(s for s in (left, right) if s)
        raise ParamsError(f"{key} must be {allowed}, got {value}")


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ParamsError(f"{key} must be one of {list(allowed)}, got {value!r}")


def _device(key: str, value: str) -> None:
    kind, _, index = value.partition(":")
    if value != "auto" and (kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit()))):
        raise ParamsError(f"{key} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


def resolve_device(name: str) -> torch.device:  # noqa: F821
    """'auto' → cuda when available (the rank's GPU under torchrun), else cpu."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)
