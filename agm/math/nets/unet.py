"""The drift network f_θ(x_t, t): a time-conditioned U-Net (docs/spec.md §5, paper §4.6).

Scales: one per entry of ``channel_mult`` (the paper: 64, 32, 16 for 64x64 inputs), each with
``num_res_blocks`` ResBlocks (GroupNorm + SiLU) on the way down and ``num_res_blocks + 1`` on the
way up; self-attention at the resolutions in ``attn_resolutions`` and always at the bottleneck;
time enters as a sinusoidal embedding → 2-layer MLP → FiLM (scale, shift) in every ResBlock;
the output convolution is zero-initialised so f starts at 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of t: (B,) in [0, 1] (scaled by 1000) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """GN → SiLU → conv → FiLM(emb) → SiLU → dropout → conv, plus a (1x1 if needed) skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions, via scaled_dot_product_attention."""

    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # (3, B, heads, HW, d) laid out with the head dimension d contiguous: the fused (flash / memory-efficient)
        # kernels need stride 1 there, and fall back to the unfused math path (B·heads·HW² float32 scores) without it
        q, k, v = qkv.permute(1, 0, 2, 4, 3).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class DriftUNet(nn.Module):
    """f_θ(x, t): (B, C, H, W), (B,) → (B, C, H, W).

    Args:
        in_channels: image channels C.
        resolution: input side H = W; must be divisible by 2^(len(channel_mult) - 1).
        base_channels: width of the first scale (paper: 128).
        channel_mult: width multiplier per scale; its length is the number of scales.
        num_res_blocks: ResBlocks per scale in the encoder (paper: 2).
        attn_resolutions: resolutions with self-attention (paper: 32 and 16); the bottleneck always has it.
        time_embed_dim: sinusoidal embedding size (paper: 256); the MLP widens it to 4·base_channels.
        head_channels: channels per attention head.
        dropout: dropout inside ResBlocks.
        groups: GroupNorm groups (reduced to a divisor of the channel count where needed).
    """

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        base_channels: int,
        channel_mult: Sequence[int],
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (),
        time_embed_dim: int = 256,
        head_channels: int = 64,
        dropout: float = 0.0,
        groups: int = 32,
    ) -> None:
        super().__init__()
        factor = 2 ** (len(channel_mult) - 1)
        if resolution % factor:
            raise ValueError(
                f"resolution {resolution} is not divisible by {factor}, the U-Net's downsampling "
                f"for {len(channel_mult)} scales"
            )
        self.in_channels, self.resolution = in_channels, resolution
        self.time_embed_dim = time_embed_dim
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embed_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def res(ci: int, co: int) -> ResBlock:
            return ResBlock(ci, co, emb_dim, groups, dropout)

        def attn(c: int) -> SelfAttention:
            return SelfAttention(c, head_channels, groups)

        self.down = nn.ModuleList()
        skips, ch, size = [base_channels], base_channels, resolution
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, base_channels * mult)]
                ch = base_channels * mult
                if size in attn_resolutions:
                    layers.append(attn(ch))
                self.down.append(nn.ModuleList(layers))
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
                size //= 2
        self.mid = nn.ModuleList([res(ch, ch), attn(ch), res(ch, ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), base_channels * mult)]
                ch = base_channels * mult
                if size in attn_resolutions:
                    layers.append(attn(ch))
                if level > 0 and i == num_res_blocks:
                    layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    layers.append(nn.Conv2d(ch, ch, 3, padding=1))
                    size *= 2
                self.up.append(nn.ModuleList(layers))
        self.norm_out = _norm(ch, groups)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @staticmethod
    def _run_layers(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            h = layer(h, emb) if isinstance(layer, (ResBlock, SelfAttention)) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_embed_dim).to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for layers in self.down:
            h = self._run_layers(layers, h, emb)
            hs.append(h)
        h = self._run_layers(self.mid, h, emb)
        for layers in self.up:
            h = self._run_layers(layers, torch.cat([h, hs.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))
