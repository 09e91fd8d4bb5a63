"""params.yaml → typed, frozen, validated dataclasses, once, at the edge.

Every stage calls :func:`load_params` with the sections it reads. Unknown keys, missing keys, wrong
types and out-of-range values each raise :class:`ParamsError` with one line that names the key and what
is allowed, before any expensive work starts. The library never sees these objects' source file: stages
pass plain values on.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agm.config.checks import check_choice, check_device, check_range, convert, read_yaml
from agm.config.errors import ParamsError

# ---------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class DataParams:
    """Where the images come from (docs/spec.md §7) and how they are prepared."""

    source: Literal["digits", "hf", "folder"]
    name: str  # HF dataset name or a save_to_disk folder (source: hf)
    path: str  # local image folder (source: folder)
    split: str
    image_column: str
    resolution: int
    channels: int
    holdout_fraction: float

    def check(self) -> None:
        check_range("data.resolution", self.resolution, lo=4)
        check_choice("data.channels", self.channels, (1, 3))
        check_range("data.holdout_fraction", self.holdout_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        if self.source == "folder" and not self.path:
            raise ParamsError("data.path must name an image folder when data.source is 'folder'")
        if self.source == "hf" and not self.name:
            raise ParamsError("data.name must name a dataset when data.source is 'hf'")


@dataclass(frozen=True)
class BridgeParams:
    """The bridge (docs/spec.md §1)."""

    schedule: Literal["cosine", "cosine_squared"]
    sigma_max: float

    def check(self) -> None:
        check_range("bridge.sigma_max", self.sigma_max, lo=0.0)


@dataclass(frozen=True)
class ModelParams:
    """The drift U-Net f_θ (docs/spec.md §5)."""

    base_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    time_embed_dim: int
    head_channels: int
    dropout: float
    groups: int

    def check(self) -> None:
        check_range("model.base_channels", self.base_channels, lo=1)
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ParamsError(
                f"model.channel_mult must be a non-empty list of ints >= 1, got {list(self.channel_mult)}")
        check_range("model.num_res_blocks", self.num_res_blocks, lo=1)
        check_range("model.time_embed_dim", self.time_embed_dim, lo=2)
        check_range("model.head_channels", self.head_channels, lo=1)
        check_range("model.dropout", self.dropout, lo=0.0, hi=1.0, hi_open=True)
        check_range("model.groups", self.groups, lo=1)

    def check_resolution(self, resolution: int) -> None:
        """Cross-field rules with data.resolution: the U-Net halves it len(channel_mult) - 1 times, and attention
        exists only at the resolutions it passes through."""
        factor = 2 ** (len(self.channel_mult) - 1)
        if resolution % factor:
            raise ParamsError(
                f"data.resolution {resolution} is not divisible by {factor}, the U-Net's downsampling for "
                f"model.channel_mult of length {len(self.channel_mult)}"
            )
        scales = [resolution // 2**i for i in range(len(self.channel_mult))]
        for i, size in enumerate(self.attn_resolutions):
            if size not in scales:
                raise ParamsError(f"model.attn_resolutions[{i}] = {size} is not one of the U-Net's resolutions "
                                  f"{scales} (data.resolution {resolution}, model.channel_mult "
                                  f"{list(self.channel_mult)})")

    def kwargs(self, in_channels: int, resolution: int) -> dict[str, Any]:
        """Constructor arguments of :class:`agm.math.nets.DriftUNet`."""
        return dict(in_channels=in_channels, resolution=resolution, **dataclasses.asdict(self))


@dataclass(frozen=True)
class PotentialParams:
    """The potential V_φ, its loss (docs/spec.md §2) and the importance weights (docs/spec.md §3)."""

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
        check_range("potential.pool", self.pool, lo=1)
        check_range("potential.groups", self.groups, lo=1)
        check_range("potential.margin", self.margin, lo=0.0, lo_open=True)
        check_range("potential.mu", self.mu, lo=0.0)
        check_range("potential.lr", self.lr, lo=0.0, lo_open=True)
        lo, hi = self.clamp
        if not 0 < lo <= 1 <= hi:
            raise ParamsError(f"potential.clamp must be [min, max] with 0 < min <= 1 <= max, got {list(self.clamp)}")

    def net_kwargs(self, in_channels: int) -> dict[str, Any]:
        """Constructor arguments of :class:`agm.math.nets.Potential`."""
        return dict(in_channels=in_channels, widths=self.widths, pool=self.pool, groups=self.groups)


@dataclass(frozen=True)
class TrainParams:
    """The training loop (docs/spec.md §4, §7): what changes the trained model (its resume identity)."""

    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float
    warmup_steps: int
    ema_decay: float
    ema_warmup: bool
    amp: Literal["none", "bf16", "fp16"]
    snapshot_every: int  # which EMA snapshots exist: part of the outputs

    def check(self) -> None:
        check_range("train.steps", self.steps, lo=1)
        check_range("train.batch_size", self.batch_size, lo=1)
        check_range("train.lr", self.lr, lo=0.0, lo_open=True)
        for i, b in enumerate(self.betas):
            check_range(f"train.betas[{i}]", b, lo=0.0, hi=1.0, hi_open=True)
        check_range("train.weight_decay", self.weight_decay, lo=0.0)
        check_range("train.grad_clip", self.grad_clip, lo=0.0)
        check_range("train.warmup_steps", self.warmup_steps, lo=0)
        check_range("train.ema_decay", self.ema_decay, lo=0.0, hi=1.0, hi_open=True)
        check_range("train.snapshot_every", self.snapshot_every, lo=0)
        if self.snapshot_every > self.steps:
            raise ParamsError(f"train.snapshot_every {self.snapshot_every} is more than train.steps {self.steps}: "
                              "no EMA snapshot would be taken (0 takes none)")


@dataclass(frozen=True)
class ExecutionParams:
    """How the stages run, not what they compute: no stage declares these keys as params and no run
    identity holds them, so changing one re-runs nothing and a half-trained run resumes under the new value."""

    device: str  # every stage's device: auto | cpu | cuda | cuda:N
    nproc: int  # processes per node for the train, sample and steps stages (torchrun)
    compile: bool
    channels_last: bool
    log_every: int
    checkpoint_every: int

    def check(self) -> None:
        check_device("execution.device", self.device)
        check_range("execution.nproc", self.nproc, lo=1)
        check_range("execution.log_every", self.log_every, lo=1)
        check_range("execution.checkpoint_every", self.checkpoint_every, lo=1)

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.nproc:
            raise ParamsError(f"train.batch_size {batch_size} is not divisible by execution.nproc {self.nproc} "
                              "(each process trains an equal slice of the global batch)")


@dataclass(frozen=True)
class SampleParams:
    """Euler–Maruyama sampling (docs/spec.md §6) and how the drift runs in it (bf16 ``amp`` changes the images;
    ``channels_last`` and ``compile`` can change float32's last bits): params of the sample and steps stages."""

    num_samples: int
    batch_size: int
    nfe: int
    g: float
    grid_nfe: int
    grid_size: int
    amp: Literal["none", "bf16"]
    channels_last: bool
    compile: bool

    def check(self) -> None:
        check_range("sample.num_samples", self.num_samples, lo=1)
        check_range("sample.batch_size", self.batch_size, lo=1)
        check_range("sample.nfe", self.nfe, lo=1)
        check_range("sample.g", self.g, lo=0.0)
        check_range("sample.grid_nfe", self.grid_nfe, lo=1)
        check_range("sample.grid_size", self.grid_size, lo=1)


@dataclass(frozen=True)
class EvalParams:
    """Evaluation (docs/spec.md §8): the feature space, precision/recall k and the feature net."""

    feature_space: Literal["digits", "inception"]
    inception_weights: str  # inception: auto | path to inception-2015-12-05.pt (docs/inception.md)
    k: int
    batch_size: int
    feature_net_epochs: int
    feature_net_lr: float
    snapshot_samples: int

    def check(self) -> None:
        check_range("eval.k", self.k, lo=1)
        check_range("eval.batch_size", self.batch_size, lo=1)
        check_range("eval.feature_net_epochs", self.feature_net_epochs, lo=1)
        check_range("eval.feature_net_lr", self.feature_net_lr, lo=0.0, lo_open=True)
        check_range("eval.snapshot_samples", self.snapshot_samples, lo=0)
        # clean-fid's InceptionV3W loads its weights by this name (agm.math.metrics.INCEPTION_WEIGHTS_FILENAME).
        if self.feature_space == "inception" and self.inception_weights != "auto" and (
                Path(self.inception_weights).name != "inception-2015-12-05.pt"):
            raise ParamsError("eval.inception_weights must be auto (clean-fid downloads the weights once) or the "
                              f"path of a local inception-2015-12-05.pt, got {self.inception_weights!r}")


SECTIONS: dict[str, type] = {
    "data": DataParams, "bridge": BridgeParams, "model": ModelParams, "potential": PotentialParams,
    "train": TrainParams, "sample": SampleParams, "eval": EvalParams, "execution": ExecutionParams,
}
TOP_LEVEL: dict[str, Any] = {"profile": str, "lambda": float, "seed": int, "seeds": tuple[int, ...],
                             "controls": tuple[str, ...]}
RESULT_KEYS = (*TOP_LEVEL, *(name for name in SECTIONS if name != "execution"))
"""Every top-level key that can change a result: all but ``execution``."""
CONTROLS = ("no_detach", "time_only", "action_matching", "shuffled")
"""Control models beside the baseline and AGM (agm.variants), switched on by listing them in ``controls``."""


@dataclass(frozen=True)
class Params:
    """The validated params file; sections not asked for are None."""

    profile: str | None = None
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
    execution: ExecutionParams | None = None


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
            value = convert(name, raw[name], TOP_LEVEL[name])
            _check_top_level(name, value)
            out["lam" if name == "lambda" else name] = value
        elif name in SECTIONS:
            out[name] = _section(name, raw[name], SECTIONS[name])
        else:
            raise KeyError(name)
    params = Params(**out)
    if params.model is not None and params.data is not None:
        params.model.check_resolution(params.data.resolution)
    if params.train is not None and params.execution is not None:
        params.execution.check_batch(params.train.batch_size)
    if params.eval is not None:  # precision and recall take each point's k-th nearest sample
        for key, n in (("sample.num_samples", params.sample.num_samples if params.sample else None),
                       ("eval.snapshot_samples", params.eval.snapshot_samples)):  # evaluate; steps
            if n is not None and n <= params.eval.k:
                raise ParamsError(f"{key} {n} must be more than eval.k {params.eval.k}: precision and recall "
                                  "take each point's k-th nearest sample")
    return params


def _check_top_level(name: str, value: Any) -> None:
    if name == "profile" and not value.strip():
        raise ParamsError("profile must name the run's profile (default, paper, ...), got an empty string")
    if name == "lambda":
        check_range("lambda", value, lo=0.0)
    elif name in ("seed", "seeds"):
        for i, seed in enumerate(value if name == "seeds" else [value]):
            check_range(f"seeds[{i}]" if name == "seeds" else "seed", seed, lo=0)
    if name == "seeds" and (not value or len(set(value)) != len(value)):
        raise ParamsError(f"seeds must be a non-empty list of distinct integers, got {list(value)}")
    if name == "controls":
        for c in value:
            check_choice("controls", c, CONTROLS)
        if len(set(value)) != len(value):
            raise ParamsError(f"controls lists a model twice: {list(value)}")


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
        values[key] = convert(f"{name}.{key}", raw[key], hints[key])
    obj = cls(**values)
    obj.check()
    return obj
