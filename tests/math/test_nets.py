"""Tests for agm/math/nets: the paper networks' sizes, shapes, initialisation and interfaces."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import torch
from helpers import NET_CONDITION, accumulation_terms, reordered_tol

from agm.config.params import load_params
from agm.math.nets import DriftUNet, Potential, count_parameters
from agm.math.nets.unet import ResBlock, SelfAttention, sinusoidal_embedding
from agm.math.saliency import potential_saliency

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
PAPER = load_params(ROOT / "profiles" / "paper.yaml", ["data", "model", "potential"])
PAPER_UNET = PAPER.model.kwargs(PAPER.data.channels, PAPER.data.resolution)
"""The paper's drift U-Net: its one source of truth is profiles/paper.yaml."""


def paper_potential() -> Potential:
    return Potential(**PAPER.potential.net_kwargs(PAPER.data.channels))


@pytest.fixture(scope="module")
def big_unet() -> DriftUNet:
    torch.manual_seed(0)
    return DriftUNet(**PAPER_UNET)


def test_paper_unet_has_about_50m_parameters(big_unet):
    n = count_parameters(big_unet)
    assert 45e6 <= n <= 55e6, n


def test_paper_unet_structure(big_unet):
    """Spec §5: 3 scales, 2 ResBlocks per encoder scale, attention at 32, 16 and the bottleneck."""
    assert len(PAPER_UNET["channel_mult"]) == 3 and PAPER_UNET["num_res_blocks"] == 2
    assert PAPER_UNET["base_channels"] == 128 and PAPER_UNET["time_embed_dim"] == 256
    blocks = [m for m in big_unet.modules() if isinstance(m, ResBlock)]
    attns = [m for m in big_unet.modules() if isinstance(m, SelfAttention)]
    assert len(blocks) == 3 * 2 + 2 + 3 * 3  # encoder + bottleneck + decoder (3 per scale)
    assert len(attns) == 2 * 2 + 1 + 2 * 3  # 32 and 16 in encoder and decoder, plus the bottleneck
    assert not big_unet.conv_out.weight.any() and not big_unet.conv_out.bias.any()


def test_paper_potential_has_about_0p7m_parameters():
    n = count_parameters(paper_potential())
    assert 0.5e6 <= n <= 0.9e6, n


def test_paper_unet_forward_64x64_is_zero_at_init(big_unet):
    """The suite's only forward of the ≈50M U-Net: batch 1 at 64x64 (≈2 s on one thread)."""
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = big_unet(x, torch.tensor([0.3]))
    assert out.shape == (1, 3, 64, 64)
    assert not out.any()


@pytest.mark.parametrize(
    "channels,resolution,mult,attn", [(1, 8, (1, 2), ()), (3, 16, (1, 2, 2), (4,))])
def test_unet_output_shape_and_zero_init(make_unet, channels, resolution, mult, attn):
    f = make_unet(in_channels=channels, resolution=resolution, channel_mult=mult,
                  attn_resolutions=attn)
    x = torch.randn(3, channels, resolution, resolution)
    out = f(x, torch.rand(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output conv: f ≡ 0 at init


def test_unet_depends_on_x_and_t_once_output_conv_is_nonzero(make_unet):
    f = make_unet()
    with torch.no_grad():
        torch.nn.init.normal_(f.conv_out.weight, std=0.1)
        x = torch.randn(2, 1, 8, 8)
        out = f(x, torch.tensor([0.2, 0.2]))
        assert out.abs().max() > 0
        assert not torch.allclose(out, f(x, torch.tensor([0.8, 0.8])))  # time enters via FiLM
        assert not torch.allclose(out, f(x + 1.0, torch.tensor([0.2, 0.2])))


def test_unet_attention_placement(make_unet):
    f = make_unet(resolution=16, channel_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(4,))
    attns = [m for m in f.modules() if isinstance(m, SelfAttention)]
    assert len(attns) == 2 + 1 + 3  # innermost scale: 2 encoder + bottleneck + 3 decoder blocks


@pytest.mark.parametrize("resolution,mult,factor", [(18, (1, 2, 2), 4), (12, (1, 1, 1, 1), 8)])
def test_unet_resolution_must_divide_downsampling(resolution, mult, factor):
    with pytest.raises(ValueError, match=rf"resolution {resolution} is not divisible by {factor}"):
        DriftUNet(in_channels=1, resolution=resolution, base_channels=8, channel_mult=mult,
                  groups=4)


def test_sinusoidal_embedding_shape_and_range():
    t = torch.tensor([0.0, 0.5, 1.0])
    emb = sinusoidal_embedding(t, 16)
    assert emb.shape == (3, 16)
    assert emb.abs().max() <= 1.0
    torch.testing.assert_close(emb[0, :8], torch.ones(8))  # cos(0) = 1
    odd = sinusoidal_embedding(t, 7)
    assert odd.shape == (3, 7) and not odd[:, -1].any()


def test_potential_has_no_time_input_and_returns_one_scalar_per_image(make_potential):
    params = list(inspect.signature(Potential.forward).parameters)
    assert params == ["self", "x"]
    V = make_potential()
    for side in (8, 16):
        v = V(torch.randn(5, 1, side, side))
        assert v.shape == (5,)
    with pytest.raises(TypeError):
        V(torch.randn(2, 1, 8, 8), torch.rand(2))


def test_paper_potential_on_64x64_rgb():
    v = paper_potential()(torch.randn(2, 3, 64, 64))
    assert v.shape == (2,)
    assert torch.isfinite(v).all()


def test_count_parameters_counts_only_trainable(make_potential):
    V = make_potential()
    total = sum(p.numel() for p in V.parameters())
    assert count_parameters(V) == total
    V.head.requires_grad_(False)
    assert count_parameters(V) == total - sum(p.numel() for p in V.head.parameters())


def test_net_condition_bound_holds(make_unet, make_potential):
    """helpers.NET_CONDITION, the κ that float64 comparisons of these networks assume, holds on this CPU:
    float32 forward passes of f and V and V's input gradient (the saliency map, through GroupNorm's
    backward) land within γ_N·κ·S of the same in float64 (S the largest |result|, N from the layers)."""
    f = make_unet(attn_resolutions=(4,))
    V = make_potential().eval()
    torch.nn.init.normal_(f.conv_out.weight, std=0.1)  # f ≡ 0 at init would make the check empty
    f.eval().requires_grad_(False)
    f64, V64 = (copy.deepcopy(m).double() for m in (f, V))
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        x, t = torch.randn(3, 1, 8, 8, generator=gen) * (1 + seed), torch.rand(3, generator=gen)
        pairs = {"f": (f(x, t), f64(x.double(), t.double()), accumulation_terms(f, x, t)),
                 "saliency": (potential_saliency(V, x), potential_saliency(V64, x.double()), accumulation_terms(V, x))}
        with torch.no_grad():
            pairs["V"] = (V(x), V64(x.double()), accumulation_terms(V, x))
        for name, (a32, a64, terms) in pairs.items():
            bound = reordered_tol(torch.float32, terms=terms, scale=float(a64.abs().max()), condition=NET_CONDITION) / 2
            assert float((a32.double() - a64).abs().max()) <= bound, (name, seed)


def _transposed_attention(attn: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The earlier layout: q, k, v as transposed views whose last dimension has stride H·W (unfused kernel)."""
    b, c, h, w = x.shape
    qkv = attn.qkv(attn.norm(x)).reshape(b, 3, attn.heads, c // attn.heads, h * w)
    q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return x + attn.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def test_attention_hands_sdpa_a_contiguous_head_dimension(monkeypatch):
    """Fused attention kernels need stride 1 in q, k, v's last (head) dimension; without it they fall back."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, *a, **kw):
        seen.append([t.stride() for t in (q, k, v)])
        return sdpa(q, k, v, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    attn = SelfAttention(64, head_channels=16, groups=8)
    attn(torch.randn(2, 64, 4, 4))
    assert seen and all(s[-1] == 1 for strides in seen for s in strides), seen
    assert all(s[-2] == 16 for strides in seen for s in strides)  # each position's d = 16 values side by side


def test_attention_layout_computes_what_the_transposed_one_did():
    """The contiguous layout changes where q, k and v lie in memory, not what attention computes: in float64 the
    two agree to rounding (~1e-16 relative); a perturbed input, or a module with other weights, is far off."""
    torch.manual_seed(0)
    attn = SelfAttention(64, head_channels=16, groups=8).double()
    torch.nn.init.normal_(attn.proj.weight, std=0.2)  # a nonzero residual branch
    x = torch.randn(3, 64, 8, 8, dtype=torch.float64)
    new, old = attn(x), _transposed_attention(attn, x)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-12)
    assert (new - x).abs().max() > 1e-2  # the branch is not a no-op the comparison could pass trivially
    other = SelfAttention(64, head_channels=16, groups=8).double()
    other.load_state_dict(attn.state_dict())
    torch.nn.init.normal_(other.qkv.weight, std=0.2)
    assert (other(x) - old).abs().max() > 1e-6


def test_attention_runs_with_sdpa_restricted_to_the_fused_kernel():
    """PyTorch refuses (rather than falls back) when SDPA is restricted to the fused flash kernel and the layout
    rules it out: the earlier transposed layout is refused, the module's own runs (forward and backward)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn = SelfAttention(32, head_channels=16, groups=8)
    x = torch.randn(2, 32, 4, 4, requires_grad=True)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        attn(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        with pytest.raises(RuntimeError, match="No available kernel"), pytest.warns(UserWarning):
            _transposed_attention(attn, x)


def test_the_drift_and_the_potential_compile_without_graph_breaks(make_unet):
    """torch.compile gains most from one graph per network: dynamo traces f and V (no inductor build, so this
    runs on the CPU in seconds) and must find no graph break (attention, FiLM, skips included)."""
    import torch._dynamo

    f = make_unet(resolution=8, channel_mult=(1, 2), attn_resolutions=(4,))
    V = Potential(**PAPER.potential.net_kwargs(1) | {"widths": (8, 16), "groups": 4})
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    for net, args in ((f, (x, t)), (V, (x,))):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(net)(*args)
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1
