"""Tests for agm/training/execution.py: the start-up warning for a slow autocast data type, and bf16 autocast on
the CPU.

The backend flags, channels_last and torch.compile of ``apply_execution`` are tested in
tests/training/test_throughput.py.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import HYPER, agm_trainer, inputs
from torch import nn

from agm.training import execution
from agm.training.execution import amp_warning, cpu_has_native_bf16

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
X86 = platform.machine().lower() in ("x86_64", "amd64")

# ------------------------------------------------------------------------------------------------
# the warning


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_warns_only_without_native_bf16(monkeypatch, native):
    monkeypatch.setattr(execution, "cpu_has_native_bf16", lambda: native)
    message = amp_warning(CPU, "bf16")
    if native:
        assert message is None
    else:
        assert message.startswith("train.amp is bf16 on a CPU without native bf16")
        assert message.endswith("set train.amp: none for CPU runs") and "\n" not in message


@pytest.mark.parametrize("native", [True, False])
def test_fp16_on_a_cpu_always_warns(monkeypatch, native):
    monkeypatch.setattr(execution, "cpu_has_native_bf16", lambda: native)
    message = amp_warning(CPU, "fp16")
    assert message.startswith("train.amp is fp16 on the CPU") and "\n" not in message


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_no_warning_on_a_gpu_or_without_autocast(monkeypatch, amp):
    monkeypatch.setattr(execution, "cpu_has_native_bf16", lambda: False)
    assert amp_warning(torch.device("cuda", 0), amp) is None
    assert amp_warning(CPU, "none") is None


@pytest.mark.parametrize(("machine", "onednn", "avx512_bf16", "native"), [
    ("x86_64", True, True, True),  # AVX512-BF16 or AMX: native
    ("x86_64", True, False, False),  # AVX-512 without BF16: oneDNN emulates bf16
    ("x86_64", False, True, False),  # oneDNN cannot run bf16 (AVX2 only): PyTorch's reference convolutions
    ("aarch64", True, False, True),  # Arm: oneDNN's check is the BF16 flag
    ("aarch64", False, False, False),
])
def test_native_bf16_needs_onednn_and_the_cpu_instructions(monkeypatch, machine, onednn, avx512_bf16, native):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert cpu_has_native_bf16() is native


@pytest.mark.skipif(not X86, reason="ONEDNN_MAX_CPU_ISA=AVX2 is an x86 setting")
def test_the_real_check_warns_when_onednn_is_capped_to_avx2():
    # oneDNN limited to AVX2 runs as on a CPU without AVX-512: no bf16 there, whatever this CPU has
    code = ("import torch; from agm.training.execution import amp_warning; "
            "print(amp_warning(torch.device('cpu'), 'bf16'))")
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("train.amp is bf16 on a CPU without native bf16")


# ------------------------------------------------------------------------------------------------
# bf16 autocast on the CPU, a tiny network


def _first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


def test_bf16_autocast_trains_a_tiny_network_on_the_cpu(make_unet, make_potential):
    if not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch build has no CPU autocast")
    losses, dtypes = {}, {}
    for amp in ("none", "bf16"):
        trainer = agm_trainer(make_unet(), make_potential(), lam=0.5, amp=amp, **HYPER)
        seen: list[torch.dtype] = []
        for net in (trainer.f, trainer.V):
            _first_conv(net).register_forward_hook(lambda module, args, out, seen=seen: seen.append(out.dtype))
        losses[amp] = [trainer.step(*inputs(seed)) for seed in range(3)]
        dtypes[amp] = set(seen)
        assert all(p.dtype == torch.float32 for p in trainer.f.parameters())  # autocast keeps float32 weights
    assert dtypes == {"none": {torch.float32}, "bf16": {torch.bfloat16}}  # f and V both ran under autocast
    for stats in losses["bf16"]:
        assert torch.isfinite(stats.drift_loss) and torch.isfinite(stats.potential_loss)
    bf16, fp32 = losses["bf16"][0].drift_loss, losses["none"][0].drift_loss
    # bf16 (8 significant bits) against float32 is not a reordering with a bound of tests/helpers.py: at step 1
    # f ≡ 0, so bf16 enters only through V's weights (λ = 0.5); a sanity bound that it is the same loss
    assert bf16 != fp32 and torch.allclose(bf16, fp32, rtol=0.05)
