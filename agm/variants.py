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

from agm.action_matching import ActionNet
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
    """A built variant: its trainer, its configuration (the checkpoint's identity, JSON-able) and what its
    model file needs (agm.model_file.save_model)."""

    trainer: TrainerBase
    config: dict[str, Any]
    potential_kwargs: dict[str, Any] | None
    kind: str
    time_scale: float | None


@dataclass(frozen=True)
class Variant:
    """One row of the table.

    Attributes:
        sections: params sections it reads (its DVC stage's ``params`` list, in dvc.yaml's order).
        logged: the dvclive scalars of its run.
        needs_time_table: whether it trains on an AGM run's time-weight table (``--time-weights``).
        build: (params, seed, channels, resolution, device, time table) → Run.
    """

    sections: tuple[str, ...]
    logged: tuple[str, ...]
    needs_time_table: bool
    build: Callable[[Params, int, int, int, torch.device, TimeWeightTable | None], Run]


def _common(params: Params, variant: str, seed: int, unet: dict[str, Any], device: torch.device):
    """Keyword arguments every trainer takes, and the configuration every run stores."""
    train = params.train
    opt = dict(lr_f=train.lr, betas=train.betas, weight_decay=train.weight_decay, grad_clip=train.grad_clip,
               ema_decay=train.ema_decay, ema_warmup=train.ema_warmup, warmup_steps=train.warmup_steps,
               amp=train.amp, fused=device.type == "cuda",
               sigma_max=params.bridge.sigma_max, schedule=params.bridge.schedule)
    # the identity holds the device type, not the index or the process count: every rank of a torchrun
    # job (cuda:0, cuda:1, ...) must agree on it, and any process count trains the same global batch
    identity = {k: v for k, v in dataclasses.asdict(train).items() if k != "nproc"}
    config = {"variant": variant, "seed": seed, "bridge": dataclasses.asdict(params.bridge), "model": unet,
              "train": {**identity, "device": device.type}}
    return opt, config


def _drift_run(variant: str, *, potential: bool, detach: bool = True, time_table: bool = False,
               shuffle: bool = False):
    """A variant of the AGM trainer: with V (agm, no_detach) or without (baseline, time_only)."""

    def build(params: Params, seed: int, channels: int, resolution: int, device: torch.device,
              table: TimeWeightTable | None) -> Run:
        torch.manual_seed(seed)  # f, then V, are initialised from the seed
        unet = params.model.kwargs(channels, resolution)
        opt, config = _common(params, variant, seed, unet, device)
        f = DriftUNet(**unet).to(device)
        V, weighting, potential_kwargs = None, UnitWeights(), None
        if potential and params.lam > 0:
            pot = params.potential
            potential_kwargs = pot.net_kwargs(channels)
            V = Potential(**potential_kwargs).to(device)
            weighting = PotentialWeights(V, lam=params.lam, clamp=pot.clamp, detach=detach,
                                         amp_dtype=AMP_DTYPES[params.train.amp])
            if shuffle:
                weighting = ShuffledWeights(weighting, seed)
            opt.update(margin=pot.margin, mu=pot.mu, lr_v=pot.lr)
            config.update({"lambda": params.lam, "potential": dataclasses.asdict(pot)})
        elif potential and (not detach or shuffle):
            raise ParamsError(f"the {variant} control needs lambda > 0 (at lambda = 0 there is no V)")
        elif time_table:
            if table is None:
                raise ValueError(f"the {variant} variant needs a time-weight table")
            weighting = TimeTableWeights(table.as_tensor(device))
            config["time_weights"] = list(table.weights)
        trainer = AGMTrainer(f, V, weighting, **opt)
        return Run(trainer, json.loads(json.dumps(config)), potential_kwargs, "drift", None)

    return build


def _action_matching(params: Params, seed: int, channels: int, resolution: int, device: torch.device,
                     table: TimeWeightTable | None) -> Run:
    torch.manual_seed(seed)
    unet = params.model.kwargs(channels, resolution)
    opt, config = _common(params, "action_matching", seed, unet, device)
    s = ActionNet(**unet).to(device)
    config["time_scale"] = s.time_scale
    trainer = ActionMatchingTrainer(s, **opt)
    return Run(trainer, json.loads(json.dumps(config)), None, "action", s.time_scale)


_BASE = ("bridge", "model", "train")
_WITH_V = ("lambda", "bridge", "model", "potential", "train")

VARIANTS: dict[str, Variant] = {
    "baseline": Variant(_BASE, ("drift_loss", "step_time_s"), False, _drift_run("baseline", potential=False)),
    "agm": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                   _drift_run("agm", potential=True)),
    "no_detach": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                         _drift_run("no_detach", potential=True, detach=False)),
    "time_only": Variant(_BASE, ("drift_loss", *WEIGHT_STATS, "step_time_s"), True,
                         _drift_run("time_only", potential=False, time_table=True)),
    "action_matching": Variant(_BASE, ("action_loss", "step_time_s"), False, _action_matching),
    "shuffled": Variant(_WITH_V, ("drift_loss", "potential_loss", *WEIGHT_STATS, "step_time_s"), False,
                        _drift_run("shuffled", potential=True, shuffle=True)),
}
"""Every runnable variant; the keys after baseline and agm are the controls (agm.config.CONTROLS)."""


def build_run(params: Params, variant: str, seed: int, channels: int, resolution: int, device: torch.device,
              time_table: TimeWeightTable | None = None) -> Run:
    """Build ``variant``'s networks and trainer, initialised from ``seed``.

    ``Run.config`` is the run's configuration, all of it: the checkpoint stores it, and a checkpoint of any
    other configuration is never resumed (the train stage adds the data's and the code's content hashes).
    """
    if variant not in VARIANTS:
        raise ParamsError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[variant].build(params, seed, channels, resolution, device, time_table)


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
