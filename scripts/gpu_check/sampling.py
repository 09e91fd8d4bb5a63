"""``sample``: Euler-Maruyama with the EMA drift (float32 as stages/sample.py runs it, and bf16 autocast): the
largest batch that fits, images/s, projected minutes for 10k samples at NFE 500."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .common import build_trainer, device_for, perf_params, write_part

SAMPLE_MODES = (
    ("float32, transposed attention (before)", {"amp": "none"}, True),
    ("float32", {"amp": "none"}, False),
    ("bf16", {"amp": "bf16"}, False),
    ("bf16, channels_last, compiled", {"amp": "bf16", "channels_last": True, "compile": True}, False),
)
"""The sampling A/B: (name, agm.models.samples.sampling_drift options, whether SelfAttention runs the old transposed
q/k/v layout). The first is the sample stage as it was measured at 59 min per 10k images on an H200."""


def _transposed_attention_forward(self, x, emb=None):
    """SelfAttention.forward as it was: q, k, v as transposed views (last-dimension stride HW: the unfused kernel)."""
    import torch.nn.functional as F

    b, c, h, w = x.shape
    qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
    q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def section_sample(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Sampling the paper U-Net: the largest batch that fits (float32, one drift evaluation per candidate), then
    each of :data:`SAMPLE_MODES` at that batch (and the smallest), timed over a few NFE and projected to 10,000
    images at NFE 500, with its peak memory."""
    import torch

    from agm.math.nets.unet import SelfAttention
    from agm.math.solver import euler_maruyama
    from agm.models.samples import sampling_drift
    from agm.training.execution import configure_backends
    from agm.training.throughput import synchronize

    device = device_for(args.dry_run)
    configure_backends(device)
    _, shape, trainer = build_trainer(perf_params(args.dry_run, tmp), "agm", device, amp="none")
    net = trainer.ema.model.eval().requires_grad_(False)
    g, nfe_paper, n_paper = 0.01, 500, 10_000
    candidates = [2, 4, 8] if args.dry_run else [500, 1000, 2000, 4000, 8000]
    timed_nfe = 2 if args.dry_run else 5
    new_forward = SelfAttention.forward

    def run(drift, batch: int, nfe: int) -> float:
        gen = torch.Generator(device=device).manual_seed(0)
        synchronize(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            euler_maruyama(drift, (batch, *shape), nfe, g, gen, device)
        synchronize(device)
        return time.perf_counter() - t0

    out: dict[str, Any] = {"image_shape": list(shape), "timed_nfe": timed_nfe, "g": g, "probe": [], "runs": []}
    fits = []
    run(net, candidates[0], 1)  # cuDNN autotuning and lazy initialisation, so the probe below times the work
    for batch in candidates:  # one drift evaluation per candidate, float32, the fused attention layout
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = run(net, batch, 1)
            mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
            out["probe"].append({"batch": batch, "fits": True, "one_nfe_s": seconds, "peak_memory_gib": mem})
            fits.append(batch)
            print(f"sample probe batch {batch}: fits, {seconds:.3f} s for one NFE, {mem} GiB", flush=True)
            if seconds > 1.5:  # the next, twice as large, would eat the section's minute
                break
        except torch.cuda.OutOfMemoryError:
            out["probe"].append({"batch": batch, "fits": False})
            print(f"sample probe batch {batch}: out of memory", flush=True)
            torch.cuda.empty_cache()
            break
    out["largest_batch_that_fits"] = max(fits)
    for batch in sorted({min(fits), max(fits)}, reverse=True):
        for name, options, transposed in SAMPLE_MODES:
            SelfAttention.forward = _transposed_attention_forward if transposed else new_forward
            if args.dry_run and options.get("compile"):  # inductor's CPU build takes minutes: compiled on a GPU
                options, name = {**options, "compile": False}, name.replace("compiled", "not compiled (dry run)")
            try:
                drift = sampling_drift(net, device, **options)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                run(drift, batch, 1)  # warm-up: compilation, cuDNN autotuning for this shape
                warm = time.perf_counter() - t0
                seconds = run(drift, batch, timed_nfe)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                out["runs"].append({"batch": batch, "mode": name, "fits": False})
                print(f"sample batch {batch} {name}: out of memory", flush=True)
                continue
            finally:
                SelfAttention.forward = new_forward
                net.to(memory_format=torch.contiguous_format)
            per_nfe = seconds / timed_nfe
            ips = batch / (per_nfe * nfe_paper)
            rec = {"batch": batch, "mode": name, **options, "transposed_attention": transposed, "fits": True,
                   "warmup_s": warm, "timed_nfe": timed_nfe, "seconds": seconds, "seconds_per_nfe": per_nfe,
                   "images_per_s_at_nfe_500": ips, "projected_minutes_10k_at_nfe_500": n_paper / ips / 60,
                   "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                                       if device.type == "cuda" else None)}
            out["runs"].append(rec)
            write_part(args, out)
            print(f"sample batch {batch} {name}: {per_nfe * 1e3:.1f} ms per NFE, {ips:.1f} img/s at NFE 500, "
                  f"{rec['projected_minutes_10k_at_nfe_500']:.1f} min for 10k, {rec['peak_memory_gib']} GiB",
                  flush=True)
            torch._dynamo.reset()
    done = [r for r in out["runs"] if r.get("fits")]
    out["fastest"] = min(done, key=lambda r: r["projected_minutes_10k_at_nfe_500"])["mode"] if done else None
    return out
