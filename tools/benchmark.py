"""`python -m tools.benchmark`: training and sampling speed of the baseline and AGM on this machine.

Not a DVC stage: its numbers belong to the machine, not to the params. Usage:

    python -m tools.benchmark --params params.yaml --out bench/results.json
    python -m tools.benchmark --params params.yaml --action-matching --out bench/am.json   # + the AM control
    python -m tools.benchmark --params profiles/paper.yaml --device cpu --amp none --batch 2 --steps 3 \\
        --nfe 2 --sample-batch 2 --out bench/paper_cpu.json          # the paper's networks, on the CPU

Builds both trainers from the params file as `stages/train.py` does (λ = 0 without V, and λ = `lambda`;
with --action-matching also the Action Matching control, eager as its train stage runs it), times training
steps on a random batch of the params' image shape, counts FLOPs per image and the achieved fraction of
the device's peak, times Euler–Maruyama sampling with the EMA drift, and writes it all to JSON.
Definitions: agm/training/throughput.py. Options left out take the params file's values.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from agm.config.device import resolve_device
from agm.config.errors import ParamsError, run_main
from agm.config.params import load_params
from agm.io.atomic import write_json
from agm.math.nets import count_parameters
from agm.training.execution import CompiledOrEager, apply_execution, configure_backends
from agm.training.peak_flops import cpu_peak, device_name, device_peak_flops
from agm.training.throughput import (
    bench_bare_step,
    bench_loop,
    bench_sample,
    bench_train,
    peak_memory_kind,
    random_batch,
)
from agm.training.trainer_base import AMP_DTYPES
from agm.variants import VARIANTS, build_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True, help="results .json")
    ap.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: execution.device)")
    ap.add_argument("--batch", type=int, help="training batch size (default: train.batch_size)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    ap.add_argument("--nfe", type=int, help="sampling steps (default: sample.nfe)")
    ap.add_argument("--sample-batch", type=int, help="sampling batch size (default: the training batch)")
    ap.add_argument("--amp", choices=tuple(AMP_DTYPES), help="training autocast (default: train.amp)")
    ap.add_argument("--sample-amp", choices=tuple(AMP_DTYPES), default="none",
                    help="sampling autocast (default: none, as stages/sample.py)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, help="default: execution.compile")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="default: execution.channels_last")
    ap.add_argument("--action-matching", action="store_true",
                    help="also time the Action Matching control's step, against AGM's")
    args = ap.parse_args()
    params = load_params(args.params, ["seeds", "data", "sample", "execution", *VARIANTS["agm"].sections])
    seed = params.seeds[0]
    batch_size = params.train.batch_size if args.batch is None else args.batch
    nfe = params.sample.nfe if args.nfe is None else args.nfe
    sample_batch = batch_size if args.sample_batch is None else args.sample_batch
    for key, value, lo in (("--batch", batch_size, 1), ("--warmup", args.warmup, 0), ("--steps", args.steps, 1),
                           ("--nfe", nfe, 1), ("--sample-batch", sample_batch, 1)):
        if value < lo:
            raise ParamsError(f"{key} must be >= {lo}, got {value}")
    device = resolve_device(args.device or params.execution.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParamsError(f"device {device} asked for, but torch sees no CUDA device")
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, amp=args.amp or params.train.amp))
    compile_ = params.execution.compile if args.compile is None else args.compile
    if args.channels_last is None:
        args.channels_last = params.execution.channels_last
    applied = configure_backends(device)
    image_shape = (params.data.channels, params.data.resolution, params.data.resolution)
    batch = random_batch(batch_size, image_shape, seed=seed, device=device)
    train, sizes, notes, trainers = {}, {}, {}, {}
    variants = ("baseline", "agm", "action_matching") if args.action_matching else ("baseline", "agm")
    data = torch.randint(0, 256, (256, *image_shape), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed)).to(device)
    loop: dict[str, dict[str, float]] = {}
    for variant in variants:
        trainer = build_run(params, variant, seed, image_shape[0], image_shape[1], device).trainer
        notes[variant] = apply_execution(trainer, compile=compile_, channels_last=args.channels_last)
        sizes[variant] = count_parameters(trainer.f) + (count_parameters(trainer.V) if trainer.V else 0)
        # the bare step of the drift U-Net (Action Matching's network is a scalar action: no bare drift step)
        bare = None if trainer.double_backward else bench_bare_step(trainer.f, batch, lr=params.train.lr,
                                                                     warmup=args.warmup, steps=args.steps)
        train[variant] = bench_train(trainer, batch, warmup=args.warmup, steps=args.steps)
        in_loop = bench_loop(trainer, data, batch_size=batch_size, steps=args.steps, seed=seed)
        loop[variant] = {"bare_step_time_s": bare, "loop_step_time_s": in_loop,
                         "loop_over_bare": in_loop / bare if bare else None}
        trainers[variant] = trainer
    trainer = trainers["agm"]
    drift = CompiledOrEager(trainer.ema.model, "the EMA drift") if compile_ else trainer.ema.model
    sample = bench_sample(drift, image_shape, batch_size=sample_batch, nfe=nfe, g=params.sample.g, seed=seed,
                          amp=AMP_DTYPES[args.sample_amp])
    base, agm = train["baseline"], train["agm"]
    results = {
        "device": {"type": device.type, "name": device_name(device), "torch": torch.__version__,
                   "threads": torch.get_num_threads(),
                   "peak_flops_per_s": device_peak_flops(device, trainer.amp_dtype or torch.float32),
                   "cpu_peak": cpu_peak() if device.type == "cpu" else None},
        "settings": {"params": args.params, "image_shape": list(image_shape), "lambda": params.lam, "seed": seed,
                     "amp": params.train.amp, "compile": compile_, "channels_last": args.channels_last,
                     "applied": applied + notes["agm"], "warmup_steps": args.warmup, "timed_steps": args.steps,
                     "parameters": sizes, "sample_amp": args.sample_amp},
        "train": {**{v: {**dataclasses.asdict(r), **loop[v]} for v, r in train.items()},
                  "agm_over_baseline_step_time": agm.step_time_s / base.step_time_s,
                  "agm_over_baseline_flops": agm.flops_per_image / base.flops_per_image},
        "sample": dataclasses.asdict(sample),
        "peak_memory_kind": peak_memory_kind(device),
    }
    if args.action_matching:
        am = train["action_matching"]
        results["train"] |= {"action_matching_over_agm_step_time": am.step_time_s / agm.step_time_s,
                             "action_matching_over_agm_flops": am.flops_per_image / agm.flops_per_image}
    write_json(args.out, results)
    print(f"benchmark: {device} ({results['device']['name']}), torch {torch.__version__}, amp {params.train.amp}, "
          f"compile {compile_}, channels_last {args.channels_last}, image {image_shape}")
    for name, r in train.items():
        frac = "n/a" if r.peak_fraction is None else f"{100 * r.peak_fraction:.1f}%"
        print(f"  {name:15s} batch {r.batch_size}: {r.step_time_s * 1e3:.1f} ms/step, {r.images_per_s:.1f} img/s, "
              f"{r.flops_per_image / 1e9:.3f} GFLOP/img, {r.achieved_flops_per_s / 1e9:.1f} GFLOP/s, peak {frac}; "
              f"loop step {loop[name]['loop_step_time_s'] * 1e3:.1f} ms" + (
                  f", bare network step {loop[name]['bare_step_time_s'] * 1e3:.1f} ms "
                  f"({loop[name]['loop_over_bare']:.2f}x bare)" if loop[name]["bare_step_time_s"] else ""))
    print(f"  agm/baseline: step time {results['train']['agm_over_baseline_step_time']:.3f}, "
          f"FLOPs {results['train']['agm_over_baseline_flops']:.3f}")
    if args.action_matching:
        print(f"  action_matching/agm: step time {results['train']['action_matching_over_agm_step_time']:.3f}, "
              f"FLOPs {results['train']['action_matching_over_agm_flops']:.3f}")
    print(f"  sample   batch {sample.batch_size} at NFE {nfe}: {sample.time_s:.2f} s, {sample.images_per_s:.1f} img/s")
    print(f"  → {args.out}")


if __name__ == "__main__":
    run_main(main)
