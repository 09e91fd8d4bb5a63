"""Stage `train`: train one model variant with the AGM trainer, logging with dvclive.

Variants share this one script: ``baseline`` (λ = 0, no V), ``agm`` (λ from the top-level `lambda`),
and the controls ``no_detach`` (AGM without the stop-gradient), ``time_only`` (no V; weights w(t) from an
AGM run's per-t mean weight) and ``action_matching`` (a scalar action s(x, t), Neklyudov et al. 2023).
Each run trains one seed; AGM runs also write their per-t mean weights (time_weights.json).
Checkpoints live in a persistent folder keyed by the configuration's digest, so a killed run resumes.
Under ``torchrun --nproc_per_node=N -m stages.train ...`` the processes split each batch (DDP) and
rank 0 alone logs and writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

from agm.accelerate import accelerate, configure_backends
from agm.action_matching import ActionMatchingTrainer, ActionNet
from agm.config import Params, ParamsError, load_params, resolve_device
from agm.data import check_batch_size, load_image_set
from agm.io import atomic_dir
from agm.model_file import save_model
from agm.nets import DriftUNet, Potential, count_parameters
from agm.provenance import code_digest, file_sha256
from agm.time_weighting import TimeWeightTable
from agm.train import AGMTrainer, train
from stages import run

VARIANTS = ("baseline", "agm", "no_detach", "time_only", "action_matching")
"""baseline (λ = 0) and AGM, and the issue-9 controls (agm.config.CONTROLS)."""
WEIGHTED = ("drift_loss", "potential_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr", "step_time_s")


def sections(variant: str) -> list[str]:
    """The params sections a variant reads (its DVC stage depends on exactly these)."""
    uses_v = variant in ("agm", "no_detach")
    return ["bridge", "model", "train"] + (["lambda", "potential"] if uses_v else [])


def logged(variant: str) -> tuple[str, ...]:
    """The dvclive scalars of a variant; Action Matching's objective is not a drift loss (it can be < 0)."""
    if variant == "action_matching":
        return ("action_loss", "step_time_s")
    if variant == "baseline":
        return ("drift_loss", "step_time_s")
    if variant == "time_only":
        return ("drift_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr", "step_time_s")
    return WEIGHTED


def build_trainer(p: Params, variant: str, seed: int, channels: int, resolution: int, device: torch.device,
                  time_table: TimeWeightTable | None = None):
    """The variant's networks and trainer, initialised from ``seed``; returns (trainer, config).

    ``config`` is the run's configuration, all of it: the checkpoint stores it, and a checkpoint of any
    other configuration is never resumed (the stage adds the data's and the code's content hashes).
    """
    torch.manual_seed(seed)
    unet = p.model.kwargs(channels, resolution)
    opt = dict(lr_f=p.train.lr, betas=p.train.betas, weight_decay=p.train.weight_decay,
               grad_clip=p.train.grad_clip, ema_decay=p.train.ema_decay, amp=p.train.amp)
    bridge = dict(sigma_max=p.bridge.sigma_max, schedule=p.bridge.schedule)
    config: dict = {"variant": variant, "seed": seed, "bridge": dataclasses.asdict(p.bridge), "model": unet,
                    "train": {**dataclasses.asdict(p.train), "device": str(device)}}
    if variant == "action_matching":
        s = ActionNet(**unet).to(device)
        trainer = ActionMatchingTrainer(s, fused=device.type == "cuda", **bridge, **opt)
        config["time_scale"] = s.time_scale
    else:
        f = DriftUNet(**unet).to(device)
        fused = device.type == "cuda"
        if variant in ("agm", "no_detach") and p.lam > 0:
            pot = p.potential
            V = Potential(**pot.net_kwargs(channels)).to(device)
            trainer = AGMTrainer(f, V, lam=p.lam, margin=pot.margin, mu=pot.mu, clamp=pot.clamp,
                                 detach=variant == "agm", lr_v=pot.lr, fused=fused, **bridge, **opt)
            config.update({"lambda": p.lam, "potential": dataclasses.asdict(pot)})
        elif variant == "no_detach":
            raise ParamsError("the no_detach control needs lambda > 0 (at lambda = 0 there is no V to detach)")
        elif variant == "time_only":
            if time_table is None:
                raise ValueError("the time_only variant needs a time-weight table")
            trainer = AGMTrainer(f, None, lam=0.0, time_table=time_table.as_tensor(device), fused=fused,
                                 **bridge, **opt)
            config["time_weights"] = list(time_table.weights)
        else:
            trainer = AGMTrainer(f, None, lam=0.0, fused=fused, **bridge, **opt)
    return trainer, json.loads(json.dumps(config))  # tuples → lists, as stored in a checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--seed", required=True, type=int, help="training seed (one of params `seeds`)")
    ap.add_argument("--data", required=True, help="training ImageSet .npz")
    ap.add_argument("--checkpoints", required=True, help="persistent checkpoint folder")
    ap.add_argument("--out", required=True, help="output folder: model.pt, snapshots/, time_weights.json")
    ap.add_argument("--live", required=True, help="dvclive folder")
    ap.add_argument("--time-weights", help="time_only: the AGM run's time_weights.json")
    args = ap.parse_args()
    if args.seed < 0:
        raise ParamsError(f"--seed must be >= 0, got {args.seed}")
    if args.variant == "time_only" and not args.time_weights:
        ap.error("--variant time_only needs --time-weights (an AGM run's time_weights.json)")
    if args.variant == "no_detach" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ParamsError("the no_detach control runs in one process (under torchrun its gradient through the "
                          "global-batch softmax would miss the other ranks' terms); run it without torchrun")
    p = load_params(args.params, sections(args.variant))
    table = TimeWeightTable.load(args.time_weights) if args.variant == "time_only" else None
    data = load_image_set(args.data)
    check_batch_size(data, p.train.batch_size)
    p.model.check_resolution(data.images.shape[2])
    device = resolve_device(p.train.device)
    rank = init_distributed(device)
    channels = data.images.shape[1]
    trainer, config = build_trainer(p, args.variant, args.seed, channels, data.images.shape[2], device, table)
    # the run's identity: a checkpoint of other data or other code is never resumed (agm.checkpoint)
    config["data"] = {"source": data.source, "n": len(data.images), "sha256": file_sha256(args.data)}
    config["code"] = code_digest("stages.train")
    ckpt_dir = Path(args.checkpoints)
    V = trainer.V
    name = f"train[{args.variant}, seed {args.seed}]"
    if rank == 0:
        print(f"{name}: f {count_parameters(trainer.f) / 1e6:.2f}M params, "
              f"V {count_parameters(V) / 1e6 if V else 0:.3f}M, {device}, checkpoints {ckpt_dir}")
    applied = configure_backends(device)
    applied += accelerate(trainer, compile=p.train.compile, channels_last=p.train.channels_last,
                          distributed=dist.is_initialized())
    if rank == 0 and applied:
        print(f"{name}: {', '.join(applied)}")
    loop = dict(steps=p.train.steps, batch_size=p.train.batch_size, seed=args.seed, checkpoint_dir=ckpt_dir,
                config=config, checkpoint_every=p.train.checkpoint_every, log_every=p.train.log_every,
                snapshot_every=p.train.snapshot_every)
    images = torch.from_numpy(data.images).to(device)
    if rank > 0:  # the other ranks train their slice of every batch; rank 0 logs and writes
        train(trainer, images, **loop)
        dist.destroy_process_group()
        return

    from dvclive import Live

    keys = logged(args.variant)
    with Live(dir=args.live, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def on_log(step: int, record: dict[str, float]) -> None:
            live.step = step
            for key in keys:
                live.log_metric(f"train/{key}", record[key])

        result = train(trainer, images, on_log=on_log, progress=True, **loop)
        live.summary.update(steps=result.step, wall_time_s=round(result.wall_time_s, 2),
                            resumed_from_step=result.resumed_from, params_f=count_parameters(trainer.f),
                            params_V=count_parameters(V) if V else 0)
    if dist.is_initialized():
        dist.destroy_process_group()
    with atomic_dir(args.out) as out:
        save_model(out / "model.pt", ema=trainer.ema.model.state_dict(), unet=config["model"],
                   potential=V.state_dict() if V else None,
                   potential_kwargs=p.potential.net_kwargs(channels) if V else None,
                   step=result.step, lam=config.get("lambda", 0.0),
                   kind="action" if args.variant == "action_matching" else "drift",
                   time_scale=config.get("time_scale"))
        if args.variant != "action_matching":
            trainer.weight_by_time.table().save(out / "time_weights.json")
        (out / "snapshots").mkdir()
        for snap in sorted(ckpt_dir.glob("ema_*.pt")):
            if int(snap.stem.split("_")[1]) <= result.step:
                shutil.copy2(snap, out / "snapshots" / snap.name)
    print(f"{name}: {result.step} steps, final {keys[0]} {result.history[-1][keys[0]]:.4f}, "
          f"{result.wall_time_s:.0f} s this run")


def init_distributed(device: torch.device) -> int:
    """Join torchrun's process group when launched by torchrun; return this process's rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank()


if __name__ == "__main__":
    run(main)
