"""Stage `train`: train one model variant with the AGM trainer, logging with dvclive.

Variants share this one script: ``baseline`` (λ = 0, no V) and ``agm`` (λ from the top-level `lambda`).
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

from agm.checkpoint import config_digest, save_model
from agm.config import Params, load_params, resolve_device
from agm.data import check_batch_size, load_image_set
from agm.io import atomic_dir
from agm.nets import DriftUNet, Potential, count_parameters
from agm.train import AGMTrainer, train
from stages import run

LOGGED = ("drift_loss", "potential_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr", "step_time_s")


def build_trainer(p: Params, lam: float, channels: int, resolution: int, device: torch.device):
    """f (and V when λ > 0) from params, wrapped in the trainer; returns (trainer, config)."""
    torch.manual_seed(p.seed)
    unet = p.model.kwargs(channels, resolution)
    f = DriftUNet(**unet).to(device)
    pot, V, kw = p.potential, None, {}
    if lam > 0:
        V = Potential(**pot.net_kwargs(channels)).to(device)
        kw = dict(margin=pot.margin, mu=pot.mu, clamp=pot.clamp, detach=pot.detach, lr_v=pot.lr)
    trainer = AGMTrainer(
        f, V, lam=lam, sigma_max=p.bridge.sigma_max, schedule=p.bridge.schedule, lr_f=p.train.lr,
        betas=p.train.betas, weight_decay=p.train.weight_decay, grad_clip=p.train.grad_clip,
        ema_decay=p.train.ema_decay, amp=p.train.amp, fused=device.type == "cuda", **kw,
    )
    train_cfg = {k: v for k, v in dataclasses.asdict(p.train).items() if k not in ("steps", "device")}
    config = {"lambda": lam, "seed": p.seed, "bridge": dataclasses.asdict(p.bridge), "model": unet,
              "potential": dataclasses.asdict(pot) if V else None, "train": train_cfg}
    return trainer, json.loads(json.dumps(config))  # tuples → lists, as stored in a checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--variant", required=True, choices=("baseline", "agm"))
    ap.add_argument("--data", required=True, help="training ImageSet .npz")
    ap.add_argument("--checkpoints", required=True, help="persistent checkpoint folder")
    ap.add_argument("--out", required=True, help="output folder: model.pt and snapshots/")
    ap.add_argument("--live", required=True, help="dvclive folder")
    args = ap.parse_args()
    agm = args.variant == "agm"
    p = load_params(args.params, ["seed", "bridge", "model", "train"] + (["lambda", "potential"] if agm else []))
    lam = p.lam if agm else 0.0
    data = load_image_set(args.data)
    check_batch_size(data, p.train.batch_size)
    p.model.check_resolution(data.images.shape[2])
    device = resolve_device(p.train.device)
    rank = init_distributed(device)
    trainer, config = build_trainer(p, lam, data.images.shape[1], data.images.shape[2], device)
    config["data"] = {"source": data.source, "n": len(data.images)}
    ckpt_dir = Path(args.checkpoints) / config_digest(config)
    V = trainer.V
    if rank == 0:
        print(f"train[{args.variant}]: f {count_parameters(trainer.f) / 1e6:.2f}M params, "
              f"V {count_parameters(V) / 1e6 if V else 0:.3f}M, λ = {lam}, {device}, checkpoints {ckpt_dir}")
    if dist.is_initialized():
        trainer.wrap_distributed()
    loop = dict(steps=p.train.steps, batch_size=p.train.batch_size, seed=p.seed, checkpoint_dir=ckpt_dir,
                config=config, checkpoint_every=p.train.checkpoint_every, log_every=p.train.log_every,
                snapshot_every=p.train.snapshot_every)
    images = torch.from_numpy(data.images).to(device)
    if rank > 0:  # the other ranks train their slice of every batch; rank 0 logs and writes
        train(trainer, images, **loop)
        dist.destroy_process_group()
        return

    from dvclive import Live

    with Live(dir=args.live, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def on_log(step: int, record: dict[str, float]) -> None:
            live.step = step
            for key in LOGGED if V is not None else ("drift_loss", "step_time_s"):
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
                   potential_kwargs=p.potential.net_kwargs(data.images.shape[1]) if V else None,
                   step=result.step, lam=lam)
        (out / "snapshots").mkdir()
        for snap in sorted(ckpt_dir.glob("ema_*.pt")):
            if int(snap.stem.split("_")[1]) <= result.step:
                shutil.copy2(snap, out / "snapshots" / snap.name)
    print(f"train[{args.variant}]: {result.step} steps, final drift loss "
          f"{result.history[-1]['drift_loss']:.4f}, {result.wall_time_s:.0f} s this run")


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
