"""``attention``: scaled_dot_product_attention on the U-Net's transposed q/k/v views against contiguous copies."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .common import device_for


def section_attention(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """scaled_dot_product_attention on q, k, v as transposed views (last-dimension stride HW, the layout the U-Net
    used to hand it) against contiguous ones: time and peak memory, float32 and bf16, at the paper U-Net's 32×32
    attention (4 heads of 64 channels) and the sampling batch; then the U-Net's SelfAttention itself with SDPA
    restricted to the fused kernels, which must run (the section fails where PyTorch refuses them)."""
    import torch
    import torch.nn.functional as F

    from agm.training.throughput import synchronize, time_per_call

    device = device_for(args.dry_run)
    batch, heads, tokens, dim = (4, 2, 16, 8) if args.dry_run else (500, 4, 1024, 64)
    out: dict[str, Any] = {"batch": batch, "heads": heads, "tokens": tokens, "head_dim": dim, "runs": []}
    for dtype in (torch.float32, torch.bfloat16):
        qkv = torch.randn(batch, 3, heads, dim, tokens, device=device, dtype=dtype)
        views = [qkv[:, i].transpose(-1, -2) for i in range(3)]  # (B, heads, HW, d), last-dim stride HW
        for layout, (q, k, v) in (("transposed views", views), ("contiguous", [x.contiguous() for x in views])):
            with torch.no_grad():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                seconds = time_per_call(lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
                                        warmup=1, iters=3, device=device)
                synchronize(device)
                extra = ((torch.cuda.max_memory_allocated(device) - base) / 2**30) if device.type == "cuda" else None
            rec = {"dtype": str(dtype).removeprefix("torch."), "layout": layout, "ms": 1e3 * seconds,
                   "extra_peak_gib": extra, "last_dim_stride": q.stride(-1)}
            out["runs"].append(rec)
            print(f"attention {rec['dtype']} {layout}: {rec['ms']:.2f} ms, {extra} GiB above the inputs", flush=True)
    out["module"] = _attention_module_fused(device, batch, heads, tokens, dim)
    out["passed"] = all(r["fused"] for r in out["module"])
    return out


def _attention_module_fused(device, batch: int, heads: int, tokens: int, dim: int) -> list[dict[str, Any]]:
    """The U-Net's own SelfAttention, forward and (float32) backward, with scaled_dot_product_attention restricted
    to the fused kernels (flash, memory-efficient; the CPU has flash only): ``fused`` is false where PyTorch finds
    no fused kernel for the tensors the module hands it and refuses (it would fall back to the math path)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from agm.math.nets.unet import SelfAttention
    from agm.training.throughput import synchronize, time_per_call

    side = int(math.isqrt(tokens))
    fused = [SDPBackend.FLASH_ATTENTION] + ([SDPBackend.EFFICIENT_ATTENTION] if device.type == "cuda" else [])
    records = []
    for dtype in (torch.float32, torch.bfloat16):
        attn = SelfAttention(heads * dim, head_channels=dim, groups=min(32, heads * dim)).to(device)
        x = torch.randn(batch, heads * dim, side, side, device=device)
        rec: dict[str, Any] = {"dtype": str(dtype).removeprefix("torch."), "fused": True}
        try:
            with sdpa_kernel(fused), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                with torch.no_grad():
                    rec["forward_ms"] = 1e3 * time_per_call(lambda a=attn, x=x: a(x), warmup=1, iters=3, device=device)
                if dtype == torch.float32 or device.type == "cuda":  # training's forward + backward
                    xg = x.clone().requires_grad_(True)
                    attn(xg).sum().backward()
                    synchronize(device)
        except RuntimeError as exc:  # "No available kernel": the layout (or dtype) rules the fused kernels out
            rec |= {"fused": False, "error": str(exc).splitlines()[0][:300]}
        print(f"attention module {rec['dtype']}: fused kernel {'ran' if rec['fused'] else 'REFUSED'}", flush=True)
        records.append(rec)
    return records
