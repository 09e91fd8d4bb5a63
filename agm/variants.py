"""The runnable variants in one table: what each reads, what it logs, how it is built.

``baseline`` and ``agm`` are the paper's two models; the controls test what AGM's weighting adds:
``no_detach`` (AGM without the stop-gradient, Eq. 12), ``time_only`` (a weight on t alone, AGM's mean
weight per t-bin), ``action_matching`` (Neklyudov et al., 2023) and ``shuffled`` (AGM's weights permuted
across the batch). The train stage, the benchmark and
the tests build trainers from here; ``tests/test_variants.py`` checks each row's params sections against
its DVC stage in dvc.yaml. A new control is one weighting class (agm.weightings) and one row.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agm.action_matching import TIME_SCALE, ActionNet
from agm.action_matching_trainer import ActionMatchingTrainer
from agm.agm_trainer import AGMTrainer
from agm.config import Params, ParamsError
from agm.model_file import save_model
from agm.nets import DriftUNet, Potential
from agm.time_weighting import TimeWeightTable
from agm.trainer_base import AMP_DTYPES, TrainerBase
from agm.weightings import PotentialWeights, ShuffledWeights, TimeTableWeights, UnitWeights

WEIGHT_STATS = ("w_min", "w_mean", "w_max", "w_std", "w_t_corr", "w_ratio", "w_ess", "w_clamped")
"""The weight statistics a weighted run logs (agm.agm_trainer.StepStats)."""


@dataclass(frozen=True)
class Run:
    """A built variant: its trainer, its configuration (:func:`run_identity`) and what its model file needs
    (agm.model_file.save_model)."""

    trainer: TrainerBase
    config: dict[str, Any]
    potential_kwargs: dict[str, Any] | None
    kind: str
    time_scale: float | None


Identity = Callable[[Params, int, int, int, str, TimeWeightTable | None], dict[str, Any]]
"""(params, seed, channels, resolution, device type, time table) → the run's configuration, JSON-able."""
Build = Callable[[Params, int, int, int, torch.device, TimeWeightTable | None], Run]
"""(params, seed, channels, resolution, device, time table) → the built run."""


@dataclass(frozen=True)
class Variant:
    """One row of the table.

    Attributes:
        sections: params sections it reads (its DVC stage's ``params`` list, in dvc.yaml's order).
        logged: the dvclive scalars of its run.
        needs_time_table: whether it trains on an AGM run's time-weight table (``--time-weights``).
        identity: its configuration, without building anything (the train stage keys resume state by it
            before it starts any process).
        build: its networks and trainer; ``Run.config`` is ``identity`` of the same arguments.
    """

    sections: tuple[str, ...]
    logged: tuple[str, ...]
    needs_time_table: bool
    identity: Identity
    build: Build


def _trainer_kwargs(params: Params, device: torch.device) -> dict[str, Any]:
    """Keyword arguments every trainer takes."""
    train = params.train
    return dict(lr_f=train.lr, betas=train.betas, weight_decay=train.weight_decay, grad_clip=train.grad_clip,
                ema_decay=train.ema_decay, ema_warmup=train.ema_warmup, warmup_steps=train.warmup_steps,
                amp=train.amp, fused=device.type == "cuda",
                sigma_max=params.bridge.sigma_max, schedule=params.bridge.schedule)


def _common_identity(params: Params, variant: str, seed: int, channels: int, resolution: int,
                     device_type: str) -> dict[str, Any]:
    """The configuration every run stores: what changes its result (never how it executes: the
    ``execution`` section). The device type is there, not the index: every rank of a torchrun job
    (cuda:0, cuda:1, ...) agrees on it."""
    return {"variant": variant, "seed": seed, "bridge": dataclasses.asdict(params.bridge),
            "model": params.model.kwargs(channels, resolution), "train": dataclasses.asdict(params.train),
            "device": device_type}


def _drift_run(variant: str, *, potential: bool, detach: bool = True, time_table: bool = False,
               shuffle: bool = False) -> tuple[Identity, Build]:
    """A variant of the AGM trainer: with V (agm, no_detach, shuffled) or without (baseline, time_only)."""

    def identity(params: Params, seed: int, channels: int, resolution: int, device_type: str,
                 table: TimeWeightTable | None) -> dict[str, Any]:
        config = _common_identity(params, variant, seed, channels, resolution, device_type)
        if potential and params.lam > 0:
            config.update({"lambda": params.lam, "potential": dataclasses.asdict(params.potential)})
        elif potential and (not detach or shuffle):
            raise ParamsError(f"the {variant} control needs lambda > 0 (at lambda = 0 there is no V)")
        elif time_table:
            if table is None:
                raise ValueError(f"the {variant} variant needs a time-weight table")
            config["time_weights"] = list(table.weights)
        return json.loads(json.dumps(config))

    def build(params: Params, seed: int, channels: int, resolution: int, device: torch.device,
              table: TimeWeightTable | None) -> Run:
        config = identity(params, seed, channels, resolution, device.type, table)
        torch.manual_seed(seed)  # f, then V, are initialised from the seed
        unet = params.model.kwargs(channels, resolution)
        opt = _trainer_kwargs(params, device)
        f = DriftUNet(**unet).to(device)
        V, weighting, potential_kwargs = None, UnitWeights(), None
        if "potential" in config:
            pot = params.potential
            potential_kwargs = pot.net_kwargs(channels)
            V = Potential(**potential_kwargs).to(device)
            weighting = PotentialWeights(V, lam=params.lam, clamp=pot.clamp, detach=detach,
                                         amp_dtype=AMP_DTYPES[params.train.amp])
            if shuffle:
                weighting = ShuffledWeights(weighting, seed)
            opt.update(margin=pot.margin, mu=pot.mu, lr_v=pot.lr)
        elif "time_weights" in config:
            weighting = TimeTableWeights(table.as_tensor(device))
        trainer = AGMTrainer(f, V, weighting, **opt)
        return Run(trainer, config, potential_kwargs, "drift", None)

    return identity, build


def _action_identity(params: Params, seed: int, channels: int, resolution: int, device_type: str,
                     table: TimeWeightTable | None) -> dict[str, Any]:
    config = _common_identity(params, "action_matching", seed, channels, resolution, device_type)
    return json.loads(json.dumps({**config, "time_scale": TIME_SCALE}))


def _action_matching(params: Params, seed: int, channels: int, resolution: int, device: torch.device,
                     table: TimeWeightTable | None) -> Run:
    config = _action_identity(params, seed, channels, resolution, device.type, table)
    torch.manual_seed(seed)
    s = ActionNet(time_scale=TIME_SCALE, **params.model.kwargs(channels, resolution)).to(device)
    trainer = ActionMatchingTrainer(s, **_trainer_kwargs(params, device))
    return Run(trainer, config, None, "action", s.time_scale)


_BASE = ("bridge", "model", "train")
_WITH_V = ("lambda", "bridge", "model", "potential", "train")

VARIANTS: dict[str, Variant] = {
    "baseline": Variant(_BASE, ("drift_loss", "step_time_s"), False, *_drift_run("baseline", potential=False)),
    "agm": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                   *_drift_run("agm", potential=True)),
    "no_detach": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                         *_drift_run("no_detach", potential=True, detach=False)),
    "time_only": Variant(_BASE, ("drift_loss", *WEIGHT_STATS, "step_time_s"), True,
                         *_drift_run("time_only", potential=False, time_table=True)),
    "action_matching": Variant(_BASE, ("action_loss", "step_time_s"), False, _action_identity, _action_matching),
    "shuffled": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                        *_drift_run("shuffled", potential=True, shuffle=True)),
}
"""Every runnable variant; the keys after baseline and agm are the controls (agm.config.CONTROLS)."""


def _row(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


def run_identity(params: Params, variant: str, seed: int, channels: int, resolution: int, device_type: str,
                 time_table: TimeWeightTable | None = None) -> dict[str, Any]:
    """``variant``'s configuration for ``seed``: every param that changes its result, JSON-able; nothing is built.

    The train stage adds the content hashes of the data and the code and the library versions, and keys the
    run's resume state by the whole (agm.run_state).
    """
    return _row(variant).identity(params, seed, channels, resolution, device_type, time_table)


def build_run(params: Params, variant: str, seed: int, channels: int, resolution: int, device: torch.device,
              time_table: TimeWeightTable | None = None) -> Run:
    """Build ``variant``'s networks and trainer, initialised from ``seed``; ``Run.config`` is :func:`run_identity`."""
    return _row(variant).build(params, seed, channels, resolution, device, time_table)


def save_run(out_dir: Path, run: Run, step: int, checkpoint_dir: Path) -> None:
    """Write a finished run into ``out_dir``: model.pt (agm.model_file), the per-t weight table of a drift
    run (time_weights.json, the time-only control's input) and the EMA snapshots up to ``step``."""
    trainer = run.trainer
    save_model(out_dir / "model.pt", ema=trainer.ema.model.state_dict(), unet=run.config["model"],
               potential=trainer.V.state_dict() if trainer.V is not None else None,
               potential_kwargs=run.potential_kwargs, step=step, lam=run.config.get("lambda", 0.0),
               kind=run.kind, time_scale=run.time_scale)
    if isinstance(trainer, AGMTrainer):
        trainer.weight_by_time.table().save(out_dir / "time_weights.json")
    (out_dir / "snapshots").mkdir()
    for snap in sorted(checkpoint_dir.glob("ema_*.pt")):
        if int(snap.stem.split("_")[1]) <= step:
            shutil.copy2(snap, out_dir / "snapshots" / snap.name)
