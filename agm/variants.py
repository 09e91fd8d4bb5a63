"""The runnable variants, one row each: how it builds, the params sections it reads, what it logs, what it may not do.

``baseline`` and ``agm`` are the paper's two models; the controls test what AGM's weighting adds:
``no_detach`` (AGM without the stop-gradient, Eq. 12), ``time_only`` (a weight on t alone, AGM's mean
weight per t-bin), ``action_matching`` (Neklyudov et al., 2023) and ``shuffled`` (AGM's weights permuted
across the batch). Every drift row is the AGM trainer with one weighting class (agm.training.weightings), as
improved-diffusion's ``create_named_schedule_sampler(name)`` picks one sampler class; a new drift variant is one
weighting class and one row of :data:`VARIANTS` (tests/test_variants.py registers one). The train stage, the
benchmark tool and the tests build trainers from here; tests/test_variants.py checks each row's sections
against its DVC stage in dvc.yaml.

λ = 0 is decided here and nowhere else (:meth:`DriftVariant.weighting_at`): a row whose weighting needs V says
in ``at_lambda_zero`` what it trains with at λ = 0: ``agm`` trains with unit weights and no V (so
``dvc exp run -S lambda=0.0`` re-trains AGM as the baseline's weighting under its own name), and a row with
None (``no_detach``, ``shuffled``) refuses λ = 0 with a ParamsError.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agm.config.errors import ParamsError
from agm.config.params import Params
from agm.math.action_matching import TIME_SCALE, ActionNet
from agm.math.nets import DriftUNet, Potential
from agm.math.time_bins import TimeWeightTable
from agm.models.files import save_model
from agm.training.action_matching_trainer import ActionMatchingTrainer
from agm.training.agm_trainer import AGMTrainer
from agm.training.trainer_base import AMP_DTYPES, TrainerBase
from agm.training.weightings import (
    NoStopGradientWeights,
    PotentialWeights,
    ShuffledWeights,
    TimeTableWeights,
    UnitWeights,
    WeightingInputs,
)

WEIGHT_STATS = ("w_min", "w_mean", "w_max", "w_std", "w_t_corr", "w_ratio", "w_ess", "w_clamped")
"""The weight statistics a weighted run logs (agm.training.agm_trainer.StepStats)."""


@dataclass(frozen=True)
class BuiltRun:
    """A built variant: its trainer, its configuration (:func:`run_identity`) and what its model file needs
    (agm.models.files.save_model)."""

    trainer: TrainerBase
    config: dict[str, Any]
    potential_kwargs: dict[str, Any] | None
    kind: str
    time_scale: float | None


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the table (the subclasses say how it builds).

    Attributes:
        name: the variant's name (``--variant``, its runs/ and live/ folders).
        sections: params sections it reads (its DVC stage's ``params`` list, in dvc.yaml's order).
        logged: the dvclive scalars of its run.
        single_process: it trains in one process only: the train stage refuses an outside torchrun and
            ignores ``execution.nproc`` for it.
    """

    name: str
    sections: tuple[str, ...]
    logged: tuple[str, ...]
    single_process: bool = False

    @property
    def needs_time_table(self) -> bool:
        """Whether it trains on an AGM run's time-weight table (``--time-weights``)."""
        return False

    def identity(self, params: Params, seed: int, channels: int, resolution: int, device_type: str,
                 table: TimeWeightTable | None) -> dict[str, Any]:
        """Its configuration, JSON-able, without building anything (the train stage keys resume state by it
        before it starts any process)."""
        raise NotImplementedError

    def build(self, params: Params, seed: int, channels: int, resolution: int, device: torch.device,
              table: TimeWeightTable | None) -> BuiltRun:
        """Its networks and trainer, initialised from ``seed``; ``BuiltRun.config`` is :meth:`identity`."""
        raise NotImplementedError

    def note(self, params: Params) -> str | None:
        """A line for the train stage's log when ``params`` change what the row trains (λ = 0), else None."""
        return None

    def _common_identity(self, params: Params, seed: int, channels: int, resolution: int,
                         device_type: str) -> dict[str, Any]:
        """What every run stores: what changes its result (never how it executes: the ``execution`` section).
        The device type is there, not the index: every rank of a torchrun job (cuda:0, cuda:1, ...) agrees."""
        return {"variant": self.name, "seed": seed, "bridge": dataclasses.asdict(params.bridge),
                "model": params.model.kwargs(channels, resolution), "train": dataclasses.asdict(params.train),
                "device": device_type}


def _trainer_kwargs(params: Params, device: torch.device) -> dict[str, Any]:
    """Keyword arguments every trainer takes."""
    train = params.train
    return dict(lr_f=train.lr, betas=train.betas, weight_decay=train.weight_decay, grad_clip=train.grad_clip,
                ema_decay=train.ema_decay, ema_warmup=train.ema_warmup, warmup_steps=train.warmup_steps,
                amp=train.amp, fused=device.type == "cuda",
                sigma_max=params.bridge.sigma_max, schedule=params.bridge.schedule)


@dataclass(frozen=True, kw_only=True)
class DriftVariant(Variant):
    """The AGM trainer (agm.training.agm_trainer) with the per-sample weights of one weighting class.

    Attributes:
        weighting: the class of its weights (agm.training.weightings); V is built when it ``needs_potential``,
            and the time table is read when it ``needs_time_table``.
        at_lambda_zero: the weighting class it trains with at λ = 0 when ``weighting`` needs V; None refuses
            λ = 0.
    """

    weighting: type
    at_lambda_zero: type | None = None

    @property
    def needs_time_table(self) -> bool:
        return self.weighting.needs_time_table

    def weighting_at(self, params: Params) -> type:
        """The weighting class this row trains with under ``params``: the one place λ = 0 is decided."""
        if not self.weighting.needs_potential or params.lam > 0:
            return self.weighting
        if self.at_lambda_zero is None:
            raise ParamsError(f"the {self.name} control needs lambda > 0 (at lambda = 0 there is no V)")
        return self.at_lambda_zero

    def note(self, params: Params) -> str | None:
        weighting = self.weighting_at(params)
        if weighting is self.weighting:
            return None
        return f"lambda = 0: trains with {weighting.__name__} and no V (agm.variants, row {self.name!r})"

    def identity(self, params: Params, seed: int, channels: int, resolution: int, device_type: str,
                 table: TimeWeightTable | None) -> dict[str, Any]:
        config = self._common_identity(params, seed, channels, resolution, device_type)
        weighting = self.weighting_at(params)
        if weighting.needs_potential:
            config.update({"lambda": params.lam, "potential": dataclasses.asdict(params.potential)})
        if weighting.needs_time_table:
            if table is None:
                raise ValueError(f"the {self.name} variant needs a time-weight table")
            config["time_weights"] = list(table.weights)
        return json.loads(json.dumps(config))

    def build(self, params: Params, seed: int, channels: int, resolution: int, device: torch.device,
              table: TimeWeightTable | None) -> BuiltRun:
        config = self.identity(params, seed, channels, resolution, device.type, table)
        weighting = self.weighting_at(params)
        torch.manual_seed(seed)  # f, then V, are initialised from the seed
        opt = _trainer_kwargs(params, device)
        f = DriftUNet(**params.model.kwargs(channels, resolution)).to(device)
        inputs = WeightingInputs(seed=seed, amp_dtype=AMP_DTYPES[params.train.amp])
        V, potential_kwargs = None, None
        if weighting.needs_potential:
            pot = params.potential
            potential_kwargs = pot.net_kwargs(channels)
            V = Potential(**potential_kwargs).to(device)
            inputs = dataclasses.replace(inputs, V=V, lam=params.lam, clamp=pot.clamp)
            opt.update(margin=pot.margin, mu=pot.mu, lr_v=pot.lr)
        if weighting.needs_time_table:
            inputs = dataclasses.replace(inputs, time_table=table.as_tensor(device))
        trainer = AGMTrainer(f, V, weighting.for_run(inputs), **opt)
        return BuiltRun(trainer, config, potential_kwargs, "drift", None)


@dataclass(frozen=True, kw_only=True)
class ActionMatchingVariant(Variant):
    """The Action Matching control: a scalar action s_θ on the same U-Net body (agm.math.action_matching)."""

    def identity(self, params: Params, seed: int, channels: int, resolution: int, device_type: str,
                 table: TimeWeightTable | None) -> dict[str, Any]:
        config = self._common_identity(params, seed, channels, resolution, device_type)
        return json.loads(json.dumps({**config, "time_scale": TIME_SCALE}))

    def build(self, params: Params, seed: int, channels: int, resolution: int, device: torch.device,
              table: TimeWeightTable | None) -> BuiltRun:
        config = self.identity(params, seed, channels, resolution, device.type, table)
        torch.manual_seed(seed)
        s = ActionNet(time_scale=TIME_SCALE, **params.model.kwargs(channels, resolution)).to(device)
        trainer = ActionMatchingTrainer(s, **_trainer_kwargs(params, device))
        return BuiltRun(trainer, config, None, "action", s.time_scale)


_BASE = ("bridge", "model", "train")
_WITH_V = ("lambda", "bridge", "model", "potential", "train")
_WITH_V_LOGS = ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s")

VARIANTS: dict[str, Variant] = {row.name: row for row in (
    DriftVariant(name="baseline", weighting=UnitWeights, sections=_BASE, logged=("drift_loss", "step_time_s")),
    DriftVariant(name="agm", weighting=PotentialWeights, at_lambda_zero=UnitWeights, sections=_WITH_V,
                 logged=_WITH_V_LOGS),
    DriftVariant(name="no_detach", weighting=NoStopGradientWeights, single_process=True, sections=_WITH_V,
                 logged=_WITH_V_LOGS),
    DriftVariant(name="time_only", weighting=TimeTableWeights, sections=_BASE,
                 logged=("drift_loss", *WEIGHT_STATS, "step_time_s")),
    ActionMatchingVariant(name="action_matching", sections=_BASE, logged=("action_loss", "step_time_s")),
    DriftVariant(name="shuffled", weighting=ShuffledWeights, sections=_WITH_V, logged=_WITH_V_LOGS),
)}
"""Every runnable variant; the keys after baseline and agm are the controls (agm.config.params.CONTROLS)."""


def variant(name: str) -> Variant:
    """The row named ``name``; a ParamsError naming the rows for any other name."""
    if name not in VARIANTS:
        raise ParamsError(f"unknown variant {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def run_identity(params: Params, name: str, seed: int, channels: int, resolution: int, device_type: str,
                 time_table: TimeWeightTable | None = None) -> dict[str, Any]:
    """Variant ``name``'s configuration for ``seed``: every param that changes its result, JSON-able; nothing is
    built.

    The train stage adds the content hashes of the data and the code and the library versions, and keys the
    run's resume state by the whole (agm.training.run_state).
    """
    return variant(name).identity(params, seed, channels, resolution, device_type, time_table)


def build_run(params: Params, name: str, seed: int, channels: int, resolution: int, device: torch.device,
              time_table: TimeWeightTable | None = None) -> BuiltRun:
    """Build variant ``name``'s networks and trainer, initialised from ``seed``; ``BuiltRun.config`` is
    :func:`run_identity`."""
    return variant(name).build(params, seed, channels, resolution, device, time_table)


def save_run(out_dir: Path, run: BuiltRun, step: int, checkpoint_dir: Path) -> None:
    """Write a finished run into ``out_dir``: model.pt (agm.models.files), the per-t weight table of a drift
    run (time_weights.json, the time-only control's input) and the EMA snapshots up to ``step``."""
    trainer = run.trainer
    save_model(out_dir / "model.pt", ema=trainer.ema.model.state_dict(), unet=run.config["model"],
               potential=trainer.V.state_dict() if trainer.V is not None else None,
               potential_kwargs=run.potential_kwargs, step=step, kind=run.kind, time_scale=run.time_scale)
    if isinstance(trainer, AGMTrainer):
        trainer.weight_by_time.table().save(out_dir / "time_weights.json")
    (out_dir / "snapshots").mkdir()
    for snap in sorted(checkpoint_dir.glob("ema_*.pt")):
        if int(snap.stem.split("_")[1]) <= step:
            shutil.copy2(snap, out_dir / "snapshots" / snap.name)
