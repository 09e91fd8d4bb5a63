"""Stage `train`: train one model variant with the AGM trainer, logging with dvclive.

Variants share this one script: ``baseline`` (λ = 0, no V) and ``agm`` (λ from the top-level `lambda`).
Checkpoints live in a persistent folder keyed by the configuration's digest, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import torch

from agm.checkpoint import config_digest, save_model
from agm.config import load_params, resolve_device
from agm.data import check_batch_size, load_image_set
from agm.io import atomic_dir
from agm.nets import DriftUNet, Potential, count_parameters
from agm.train import AGMTrainer, train
from stages import run

VARIANTS = ("baseline", "agm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--data", required=True, help="training ImageSet .npz")
    ap.add_argument("--checkpoints", required=True, help="persistent checkpoint folder")
    ap.add_argument("--out", required=True, help="output folder: model.pt and snapshots/")
    ap.add_argument("--live", required=True, help="dvclive folder")
    args = ap.parse_args()
    agm = args.variant == "agm"
    sections = ["seed", "bridge", "model", "train"] + (["lambda", "potential"] if agm else [])
    p = load_params(args.params, sections)
    lam = p.lam if agm else 0.0
    data = load_image_set(args.data)
    check_batch_size(data, p.train.batch_size)
    channels, resolution = data.images.shape[1], data.images.shape[2]
    p.model.check_resolution(resolution)

    device = resolve_device(p.train.device)
    torch.manual_seed(p.seed)
    unet_kwargs = p.model.kwargs(channels, resolution)
    f = DriftUNet(**unet_kwargs).to(device)
    pot_kwargs = p.potential.net_kwargs(channels) if agm and lam > 0 else None
    V = Potential(**pot_kwargs).to(device) if pot_kwargs else None
    pot = p.potential
    trainer = AGMTrainer(
        f, V, lam=lam, sigma_max=p.bridge.sigma_max, schedule=p.bridge.schedule,
        margin=pot.margin if V else 1.0, mu=pot.mu if V else 0.0,
        clamp=pot.clamp if V else (0.1, 10.0), detach=pot.detach if V else True,
        lr_f=p.train.lr, lr_v=pot.lr if V else 0.0, betas=p.train.betas,
        weight_decay=p.train.weight_decay, grad_clip=p.train.grad_clip,
        ema_decay=p.train.ema_decay, amp=p.train.amp, fused=device.type == "cuda",
    )
    # everything that shapes the trajectory; `steps` may grow and the run still resumes
    config = {"variant": args.variant, "lambda": lam, "seed": p.seed, "bridge": dataclasses.asdict(p.bridge),
              "model": unet_kwargs, "potential": pot_kwargs and dataclasses.asdict(pot),
              "train": {k: v for k, v in dataclasses.asdict(p.train).items() if k not in ("steps", "device")},
              "data": {"source": data.source, "n": len(data.images)}}
    config = _jsonable(config)
    ckpt_dir = Path(args.checkpoints) / config_digest(config)
    print(f"train[{args.variant}]: f {count_parameters(f) / 1e6:.2f}M params, "
          f"V {count_parameters(V) / 1e6 if V else 0:.3f}M, λ = {lam}, {device}, checkpoints {ckpt_dir}")

    from dvclive import Live

    with Live(dir=args.live, save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def on_log(step: int, record: dict[str, float]) -> None:
            live.step = step
            for key in ("drift_loss", "potential_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr"):
                if V is not None or key == "drift_loss":
                    live.log_metric(f"train/{key}", record[key], plot=True)
            live.log_metric("train/step_time_s", record["step_time_s"], plot=True)

        result = train(
            trainer, torch.from_numpy(data.images).to(device), steps=p.train.steps,
            batch_size=p.train.batch_size, seed=p.seed, checkpoint_dir=ckpt_dir, config=config,
            checkpoint_every=p.train.checkpoint_every, log_every=p.train.log_every,
            snapshot_every=p.train.snapshot_every, on_log=on_log, progress=True,
        )
        live.summary["steps"] = result.step
        live.summary["wall_time_s"] = round(result.wall_time_s, 2)
        live.summary["resumed_from_step"] = result.resumed_from
        live.summary["params_f"] = count_parameters(f)
        live.summary["params_V"] = count_parameters(V) if V else 0

    with atomic_dir(args.out) as out:
        save_model(out / "model.pt", ema=trainer.ema.model.state_dict(), unet=unet_kwargs,
                   potential=V.state_dict() if V else None, potential_kwargs=pot_kwargs,
                   step=result.step, lam=lam)
        (out / "snapshots").mkdir()
        for snap in sorted(ckpt_dir.glob("ema_*.pt")):
            if int(snap.stem.split("_")[1]) <= result.step:
                shutil.copy2(snap, out / "snapshots" / snap.name)
    print(f"train[{args.variant}]: {result.step} steps, final drift loss "
          f"{result.history[-1]['drift_loss']:.4f}, {result.wall_time_s:.0f} s this run")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


if __name__ == "__main__":
    run(main)
