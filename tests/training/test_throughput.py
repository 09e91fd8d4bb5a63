"""Tests for agm/training/throughput.py and tools/benchmark.py: FLOP counts against closed forms, the trainer's speed
switches (channels_last, the compile fallback), the peak table, the timer and the benchmark's JSON."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import (
    NET_CONDITION,
    accumulation_terms,
    after_adam_tol,
    agm_trainer,
    assert_reordered_close,
    float32_of_float64_tol,
)
from torch import nn

from agm.math.action_matching import ActionNet
from agm.training.action_matching_trainer import ActionMatchingTrainer
from agm.training.agm_trainer import AGMTrainer
from agm.training.execution import CompiledOrEager, apply_execution
from agm.training.peak_flops import cpu_peak, device_peak_flops, peak_flops_for
from agm.training.throughput import (
    count_flops,
    random_batch,
    run_step,
    step_flops,
    time_per_call,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
HYPER = dict(sigma_max=0.1, lr_f=1e-3, lr_v=1e-3, ema_decay=0.9)


def _batch(b: int = 4, seed: int = 0):
    return random_batch(b, (1, 8, 8), seed=seed, device=CPU)


def _agm(make_unet, make_potential) -> AGMTrainer:
    return agm_trainer(make_unet(), make_potential(), lam=0.5, **HYPER)


def _assert_same_models(a: AGMTrainer, b: AGMTrainer, **tol) -> None:
    for x, y in ((a.f, b.f), (a.ema.model, b.ema.model), (a.V, b.V)):
        for p, q in zip(x.parameters(), y.parameters(), strict=True):
            torch.testing.assert_close(p, q, **tol)


def _after_adam(trainer: AGMTrainer, steps: int) -> dict[str, float]:
    """Tolerances for f, its EMA and V after ``steps`` AdamW steps of two runs that differ only in summation
    order (another memory layout): helpers.after_adam_tol in float64, N from both networks' layers."""
    batch = _batch()
    terms = (accumulation_terms(trainer.f, batch.x1, batch.t)
             + accumulation_terms(trainer.V, torch.cat([batch.x1, batch.z])))
    return dict(rtol=0.0, atol=after_adam_tol(torch.float64, terms=terms, lr=HYPER["lr_f"], steps=steps))


# ------------------------------------------------------------------------------------------------
# FLOPs


def test_count_flops_of_conv_and_linear_is_the_closed_form():
    b, ci, co, h, k, o = 3, 2, 4, 6, 3, 5
    net = nn.Sequential(nn.Conv2d(ci, co, k, padding=1), nn.Flatten(), nn.Linear(co * h * h, o))
    x = torch.randn(b, ci, h, h)
    conv = 2 * b * co * h * h * ci * k * k  # 2 FLOPs per multiply-add: per output element, input channel, tap
    linear = 2 * b * (co * h * h) * o
    assert count_flops(lambda: net(x)) == conv + linear
    # backward: the linear layer's input and weight gradients, the conv's weight gradient only (x needs none)
    assert count_flops(lambda: net(x).sum().backward()) == (conv + linear) + (conv + 2 * linear)


def test_attention_flops_are_counted_on_the_cpu():
    """Forward QKᵀ and PV: 2 matmuls of 2·B·h·L²·d; backward: 5 more (QKᵀ recomputed, dP, dV, dQ, dK)."""
    b, h, length, d = 2, 3, 16, 8
    q = torch.randn(b, h, length, d, requires_grad=True)
    one = 2 * b * h * length * length * d
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * one
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward()) == 7 * one


def test_step_flops_are_f_for_the_baseline_and_add_v_for_agm(make_unet, make_potential):
    batch = _batch()
    f, V = make_unet(), make_potential()
    x, t = batch.x1, batch.t  # any input of the step's shapes: the counts depend on shapes only
    f_step = count_flops(lambda: f(x, t).square().mean().backward())
    v_step = count_flops(lambda: V(torch.cat([x, batch.z])).sum().backward())  # L_V on x_t and the negatives
    with torch.no_grad():
        v_weights = count_flops(lambda: V(x))
    baseline = agm_trainer(make_unet(), None, lam=0.0, **HYPER)
    assert step_flops(baseline, batch) == f_step
    assert step_flops(_agm(make_unet, make_potential), batch) == f_step + v_step + v_weights


def test_step_flops_leave_the_trainer_unchanged(make_unet, make_potential):
    trainer = _agm(make_unet, make_potential)
    before = copy.deepcopy(trainer)
    step_flops(trainer, _batch())
    _assert_same_models(trainer, before, rtol=0, atol=0)
    assert not trainer.opt_f.state and not trainer.opt_v.state


# ------------------------------------------------------------------------------------------------
# channels_last and torch.compile


def test_channels_last_trains_like_the_default_layout(make_unet, make_potential, float64):
    """channels_last runs other convolution kernels, so the two layouts sum in other orders: in float64, the
    forward passes agree to helpers.reordered_tol and three AdamW steps to helpers.after_adam_tol (in float32
    a near-zero gradient whose sign flips moves its weight by a whole step, whatever the layout is worth)."""
    f = make_unet()
    torch.nn.init.normal_(f.conv_out.weight, std=0.1)  # f ≡ 0 at init would compare zeros
    trainer = agm_trainer(f, make_potential(), lam=0.5, **HYPER)
    reference = copy.deepcopy(trainer)
    assert apply_execution(trainer, compile=False, channels_last=True) == ["channels_last"]
    weights = (trainer.f.conv_in.weight, trainer.ema.model.conv_in.weight, trainer.V.features[0].weight)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    batch = _batch()
    x, t = batch.x1, batch.t
    with torch.no_grad():
        assert_reordered_close(trainer.f(x, t), reference.f(x, t), terms=accumulation_terms(reference.f, x, t),
                               condition=NET_CONDITION)
        assert_reordered_close(trainer.V(x), reference.V(x), terms=accumulation_terms(reference.V, x),
                               condition=NET_CONDITION)
    for seed in range(3):
        batch = _batch(seed=seed)
        a = trainer.step(batch.x1, batch.x0, batch.eps, batch.t, batch.z)
        b = reference.step(batch.x1, batch.x0, batch.eps, batch.t, batch.z)
        if seed == 0:  # the same weights: float64 networks, float32 losses (agm.math.losses casts their inputs)
            nets = accumulation_terms(reference.f, x, t) + accumulation_terms(reference.V, torch.cat([x, x]))
            for name in ("drift_loss", "potential_loss"):  # means of B per-sample means of ≥ 0 terms
                tol = float32_of_float64_tol(float32_terms=2 * x.numel(), scale=float(getattr(b, name)),
                                             net_terms=nets)
                torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0.0, atol=tol)
    _assert_same_models(trainer, reference, **_after_adam(reference, steps=3))


def test_a_resumed_channels_last_run_keeps_optimizer_state_in_the_parameters_layout(make_unet, make_potential,
                                                                                    float64):
    """Fused AdamW on CUDA refuses state whose strides differ from the parameter's: a checkpoint written
    in the default layout must come back in channels_last (and its next step is the default layout's, to
    helpers.after_adam_tol for one step in float64)."""
    saved = _agm(make_unet, make_potential)
    run_step(saved, _batch())
    resumed = _agm(make_unet, make_potential)
    apply_execution(resumed, compile=False, channels_last=True)
    resumed.load_state_dict(copy.deepcopy(saved.state_dict()))
    for opt in (resumed.opt_f, resumed.opt_v):
        for p in (p for group in opt.param_groups for p in group["params"]):
            for value in opt.state[p].values():
                if value.shape == p.shape:
                    assert value.stride() == p.stride()
    run_step(saved, _batch(seed=1))
    run_step(resumed, _batch(seed=1))
    _assert_same_models(resumed, saved, **_after_adam(saved, steps=1))


def test_compile_that_fails_at_once_leaves_the_modules_eager(make_unet, make_potential, monkeypatch):
    def no_compiler(module):
        raise RuntimeError("Python 3.99 is not supported by torch.compile")

    monkeypatch.setattr(torch, "compile", no_compiler)
    trainer = _agm(make_unet, make_potential)
    with pytest.warns(UserWarning) as caught:
        notes = apply_execution(trainer, compile=True, channels_last=False)
    assert [str(w.message) for w in caught] == [
        f"torch.compile of {name} failed (RuntimeError: Python 3.99 is not supported by torch.compile); "
        f"running {name} eagerly" for name in ("f", "V")]
    assert trainer.f_train is trainer.f and trainer.V_train is trainer.V
    assert notes == [f"compile {name} failed (RuntimeError: Python 3.99 is not supported by torch.compile): eager"
                     for name in ("f", "V")]


def test_a_double_backward_trainer_stays_eager_in_the_default_layout(tiny_unet_kwargs, monkeypatch):
    def compile_must_not_run(module):
        raise AssertionError("torch.compile was called for Action Matching")

    monkeypatch.setattr(torch, "compile", compile_must_not_run)
    trainer = ActionMatchingTrainer(ActionNet(**tiny_unet_kwargs), sigma_max=0.1)
    assert apply_execution(trainer, compile=True, channels_last=True) == []
    assert trainer.f_train is trainer.f
    assert all(p.is_contiguous() for p in trainer.f.parameters())  # not moved to channels_last
    run_step(trainer, _batch(seed=0))  # the double backward runs


def test_compile_that_fails_at_the_first_call_falls_back_to_eager(make_unet, make_potential, monkeypatch):
    calls = []

    def lazy_failure(module):  # torch.compile returns at once; Inductor fails when it lowers the first call
        def compiled(*args):
            calls.append(module)
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\n(a long traceback)")

        return compiled

    monkeypatch.setattr(torch, "compile", lazy_failure)
    trainer = _agm(make_unet, make_potential)
    reference = copy.deepcopy(trainer)
    assert apply_execution(trainer, compile=True, channels_last=False) == ["compile f", "compile V"]
    assert isinstance(trainer.f_train, CompiledOrEager) and isinstance(trainer.V_train, CompiledOrEager)
    batch = _batch()
    with pytest.warns(UserWarning) as caught:
        run_step(trainer, batch)
    assert [str(w.message) for w in caught] == [
        f"the compiled call of {name} failed (RuntimeError: InvalidCxxCompiler: No working C++ compiler found); "
        f"running {name} eagerly" for name in ("V", "f")]
    run_step(reference, batch)
    _assert_same_models(trainer, reference, rtol=0, atol=0)  # the same eager operations on the same shapes
    assert len(calls) == 2  # one failed call each for V and f; eager ever after
    run_step(trainer, _batch(seed=1))
    assert len(calls) == 2


# ------------------------------------------------------------------------------------------------
# peak table and timer


@pytest.mark.parametrize("name, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989e12),
    ("NVIDIA H100 PCIe", torch.bfloat16, 756e12),
    ("NVIDIA H100 NVL", torch.float16, 835e12),
    ("NVIDIA H200", torch.bfloat16, 989e12),
    ("NVIDIA A100-SXM4-80GB", torch.float32, 156e12),
    ("NVIDIA GeForce RTX 4090", torch.bfloat16, 165e12),
    ("NVIDIA L4", torch.bfloat16, None),
    ("NVIDIA H100 80GB HBM3", torch.float64, None),
])
def test_peak_flops_table(name, dtype, peak):
    assert peak_flops_for(name, dtype) == peak


CPUINFO = """processor\t: 0
model name\t: Some Xeon
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw
"""


def test_cpu_peak_is_cores_lanes_fma_units_two_and_clock():
    peak = cpu_peak(threads=2, cpuinfo=CPUINFO)
    assert peak["flops_per_s"] == 2 * 16 * 2 * 2 * 2.6e9 and peak["fp32_lanes"] == 16
    assert cpu_peak(threads=1, cpuinfo=CPUINFO.replace(" avx512f avx512bw", ""))["flops_per_s"] == 8 * 2 * 2 * 2.6e9
    assert cpu_peak(cpuinfo="processor\t: 0\n") is None  # no clock: no peak claimed


def test_no_peak_is_claimed_for_a_cpu_in_bf16():
    assert device_peak_flops(CPU, torch.bfloat16) is None


def test_timer_leaves_out_the_warm_up_calls():
    calls = []

    def fn():
        calls.append(None)
        if len(calls) <= 2:
            time.sleep(0.3)

    assert time_per_call(fn, warmup=2, iters=3, device=CPU) < 0.1
    assert len(calls) == 5


# ------------------------------------------------------------------------------------------------
# the benchmark


def _tiny_params(tmp_path: Path) -> Path:
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["execution"]["device"] = "cpu"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _benchmark(monkeypatch, *args: str) -> None:
    from agm.config.errors import run_main as run
    from tools import benchmark

    monkeypatch.setattr(sys, "argv", ["benchmark", *args])
    run(benchmark.main)


def test_benchmark_writes_the_measurements(tmp_path, monkeypatch):
    out = tmp_path / "bench" / "results.json"
    _benchmark(monkeypatch, "--params", str(_tiny_params(tmp_path)), "--out", str(out), "--batch", "4",
               "--warmup", "1", "--steps", "2", "--nfe", "2", "--sample-batch", "3", "--channels-last")
    r = json.loads(out.read_text())
    assert set(r) == {"device", "settings", "train", "sample", "peak_memory_kind"}
    assert r["device"]["type"] == "cpu" and r["device"]["peak_flops_per_s"] == cpu_peak()["flops_per_s"]
    assert r["settings"]["channels_last"] and r["settings"]["applied"] == ["channels_last"]
    for variant in ("baseline", "agm"):
        t = r["train"][variant]
        assert t["batch_size"] == 4 and t["step_time_s"] > 0
        assert t["images_per_s"] == pytest.approx(4 / t["step_time_s"])
        peak = r["device"]["peak_flops_per_s"]
        assert t["peak_fraction"] == pytest.approx(t["achieved_flops_per_s"] / peak)
        assert t["host_syncs_per_step"] is None and t["peak_memory_bytes"] > 0
        assert t["bare_step_time_s"] > 0 and t["loop_over_bare"] == pytest.approx(
            t["loop_step_time_s"] / t["bare_step_time_s"])
    assert r["train"]["agm_over_baseline_flops"] > 1
    assert r["train"]["agm_over_baseline_step_time"] == pytest.approx(
        r["train"]["agm"]["step_time_s"] / r["train"]["baseline"]["step_time_s"])
    s = r["sample"]
    assert (s["batch_size"], s["nfe"]) == (3, 2) and s["images_per_s"] > 0 and s["peak_fraction"] > 0


def test_benchmark_times_action_matching_against_agm(tmp_path, monkeypatch):
    out = tmp_path / "am.json"
    _benchmark(monkeypatch, "--params", str(_tiny_params(tmp_path)), "--out", str(out), "--batch", "4",
               "--warmup", "1", "--steps", "2", "--nfe", "2", "--action-matching")
    train = json.loads(out.read_text())["train"]
    am, agm = train["action_matching"], train["agm"]
    assert am["step_time_s"] > 0 and am["batch_size"] == 4
    # the AM loss runs s forward on x_t and on both endpoints, then differentiates ∇ₓs: far above AGM's FLOPs
    assert am["flops_per_image"] > 2 * agm["flops_per_image"]
    assert train["action_matching_over_agm_step_time"] == pytest.approx(am["step_time_s"] / agm["step_time_s"])
    assert train["action_matching_over_agm_flops"] == pytest.approx(am["flops_per_image"] / agm["flops_per_image"])


@pytest.mark.parametrize("option", ["--steps", "--batch", "--nfe"])
def test_benchmark_bad_option_is_one_line(tmp_path, monkeypatch, capsys, option):
    with pytest.raises(SystemExit) as exc:
        _benchmark(monkeypatch, "--params", str(_tiny_params(tmp_path)), "--out", str(tmp_path / "r.json"),
                   option, "0")
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"error: {option} must be >= 1, got 0\n"
    assert not (tmp_path / "r.json").exists()
