"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("agm", "stages", "tools", ".dvc", "dvc.yaml", ".gitignore", ".dvcignore", "requirements.txt",
                  "profiles", "docs/results/verdicts.yaml", "docs/results/converged/plateau.json")
"""What a `dvc repro` in a temporary repository needs of this one (params.yaml is the test's own)."""

B = 8
HYPER = dict(sigma_max=0.1, margin=1.0, mu=0.01, clamp=(0.1, 10.0), lr_f=1e-3, lr_v=1e-3,
             betas=(0.9, 0.999), weight_decay=0.0, grad_clip=1.0, ema_decay=0.9)
"""Trainer settings of the tiny step and loop tests."""


def inputs(seed: int = 0, b: int = B):
    """One step's (x1, x0, eps, t, z) for 1x8x8 images, drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (b, 1, 8, 8)
    x1 = torch.rand(shape, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(shape, generator=gen) for _ in range(3))
    t = torch.rand(b, generator=gen)
    return x1, x0, eps, t, z


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def params_equal(m1: nn.Module, m2: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time_s"} for r in history]


def agm_trainer(f, V=None, *, lam: float = 0.0, clamp=(0.1, 10.0), detach: bool = True, time_table=None, **kw):
    """An AGMTrainer with the weighting the arguments describe (as agm.variants builds them from params):
    a time table → TimeTableWeights; a V → PotentialWeights(V, lam, clamp, detach); neither → UnitWeights."""
    from agm.training.agm_trainer import AGMTrainer
    from agm.training.trainer_base import AMP_DTYPES
    from agm.training.weightings import PotentialWeights, TimeTableWeights, UnitWeights

    if time_table is not None:
        weighting = TimeTableWeights(time_table)
    elif V is not None:
        weighting = PotentialWeights(V, lam=lam, clamp=clamp, detach=detach,
                                     amp_dtype=AMP_DTYPES[kw.get("amp", "none")])
    else:
        weighting = UnitWeights()
    return AGMTrainer(f, V, weighting, **kw)


def stage_error(stage: str, tmp_path, features, eval_updates: dict, monkeypatch, capsys) -> str:
    """Run the evaluate or steps stage on ``features`` with tiny params (``eval`` updated) and inputs that do
    not exist; check it stops with exit code 2, one ``error:`` line and no output; return that line."""
    import sys
    from pathlib import Path

    import pytest
    import yaml

    from stages import run

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "tests" / "tiny_params.yaml").read_text())
    params["eval"].update(eval_updates)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    missing = str(tmp_path / "missing")
    extra = ["--samples", missing] if stage == "evaluate" else ["--seed", "0", "--run", missing]
    argv = [stage, "--params", str(tmp_path / "params.yaml"), "--features", str(features),
            "--out", str(tmp_path / "out"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    module = __import__(f"stages.{stage}", fromlist=["main"])
    with pytest.raises(SystemExit) as info:
        run(module.main)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()
    return err


def copy_pipeline(dst: Path) -> None:
    """Copy the code and DVC files of this repository into ``dst`` (caches and __pycache__ left out)."""
    for name in PIPELINE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp"))
        else:
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


# ---- tolerances: from the computation, not from one CPU's rounding -------------------------------------------
#
# Two evaluations of one computation that differ only in the order of their sums (another batch size or split
# across processes, SIMD width, blocking, memory layout, compiled against eager code) land apart by an amount
# the dtype and the computation bound, whatever the CPU. The suite was once tuned on one CPU's observed error
# and failed on another's (a saliency map, 1.35e-6 against atol 1e-6). Byte equality is claimed only where
# the two results come from the same operations on the same shapes in one process.


def unit_roundoff(dtype: torch.dtype) -> float:
    """u: the largest relative error of one rounded operation in ``dtype`` (float32 2^-24 ≈ 6.0e-8,
    float64 2^-53 ≈ 1.1e-16): half the machine epsilon."""
    return torch.finfo(dtype).eps / 2


def reordered_tol(dtype: torch.dtype, *, terms: int, scale: float, condition: float = 1.0) -> float:
    """An absolute bound on how far two evaluations of one float computation in ``dtype`` may land apart
    when they differ only in the order of their sums: 2·γ_N·κ·S, γ_N = N·u / (1 − N·u).

    Derivation. A sum of n terms evaluated in any order is within γ_{n−1}·Σ|x_i| of the exact sum (Higham,
    Accuracy and Stability of Numerical Algorithms, 2nd ed., 2002, §4.2; fused multiply-adds, pairwise and
    blocked orders only lower it). In a composition of such sums (a network's forward and backward pass,
    the steps of an optimiser) each stage's rounding reaches the result multiplied by the condition of the
    stages after it, so to first order the result is within γ_N·κ·S of the exact one, where
    ``terms`` N ≥ the summed accumulation lengths along the computation (:func:`accumulation_terms`),
    ``condition`` κ ≥ the largest amplification of a relative error by what follows it, and
    ``scale`` S ≥ the size of the compared values (Σ|x_i| for a single sum). Two evaluations, each that
    close to the exact result, are within twice that of each other.
    """
    nu = terms * unit_roundoff(dtype)
    if nu >= 0.5:
        raise ValueError(f"{terms} terms in {dtype}: γ_N = N·u/(1 − N·u) is no bound here (N·u = {nu:.3g})")
    return 2 * nu / (1 - nu) * condition * scale


NET_CONDITION = 1e3
"""κ assumed for the tests' small networks (forward and backward): GroupNorm divides by a group's standard
deviation, which for a group of two 1×1 values (the potential's last layer at 8×8) can be small, so the
condition is not 1. ``tests/test_nets.py::test_net_condition_bound_holds`` measures it on every CPU the
suite runs on (float32 against float64 on the same inputs); comparisons that need it run in float64, where
2·γ_N·κ stays far below the effect of a real error (a sample mixed into another's result moves it by O(1))."""


def accumulation_terms(module: nn.Module, *inputs: torch.Tensor, backward: bool = True) -> int:
    """N for :func:`reordered_tol`: the summed length of every sum one forward pass (and, by default, one
    backward pass) of ``module`` on ``inputs`` computes, read from its layers' shapes by forward hooks:

    - Conv2d: a forward output sums in/groups·k·k products; backward, an input gradient out/groups·k·k and a
      weight gradient batch·H_out·W_out.
    - Linear: in_features; backward, out_features and the number of rows.
    - GroupNorm: its mean and variance over a group (C/G·H·W); backward, their gradients.
    - AdaptiveAvgPool2d: the pooled window, forward and backward.
    - agm.math.nets.unet.SelfAttention (its scaled_dot_product_attention is not a module): QKᵀ over the head
      dimension d and PV over the H·W positions; backward, dS, dV, dQ and dK.

    Element-wise layers sum nothing. A path through the computation sums at most all of these.
    """
    from agm.math.nets.unet import SelfAttention

    terms = 0

    def count(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal terms
        x = args[0]
        if isinstance(m, nn.Conv2d):
            taps = m.kernel_size[0] * m.kernel_size[1]
            terms += m.in_channels // m.groups * taps
            if backward:
                terms += m.out_channels // m.groups * taps + x.shape[0] * out.shape[-2] * out.shape[-1]
        elif isinstance(m, nn.Linear):
            terms += m.in_features + (m.out_features + x.numel() // m.in_features if backward else 0)
        elif isinstance(m, nn.GroupNorm):
            terms += (4 if backward else 2) * (x[0].numel() // m.num_groups)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            terms += (2 if backward else 1) * (x.shape[-2] * x.shape[-1]) // (out.shape[-2] * out.shape[-1])
        elif isinstance(m, SelfAttention):
            d, length = x.shape[1] // m.heads, x.shape[-2] * x.shape[-1]
            terms += d + length + (d + length + 4 * max(d, length) if backward else 0)

    handles = [m.register_forward_hook(count) for m in module.modules()]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return terms


def after_adam_tol(dtype: torch.dtype, *, terms: int, lr: float, steps: int, eps: float = 1e-8,
                   grad_scale: float = 1.0) -> float:
    """An absolute bound on how far the parameters of two runs may land apart after ``steps`` (clipped)
    AdamW steps whose gradients differ only in summation order: steps·(lr/ε)·reordered_tol(dtype, terms, 1).

    Derivation. AdamW moves a parameter by lr·m̂/(√v̂ + ε): the derivative of g/(|g| + ε) in g is at most 1/ε,
    and m̂, v̂ are running averages of the same gradients, so a gradient that differs by δ moves the step by at
    most (lr/ε)·δ, where δ ≤ reordered_tol(dtype, terms, grad_scale) for gradients of size ≤ grad_scale (the
    trainers clip them to norm 1). Over k steps the differences add. This is a first-order bound: it leaves
    out their feedback into later gradients, which lr/ε would amplify for a gradient near 0 but which for a
    gradient g well above ε is lr·ε/g² per unit (negligible), over the few steps these tests take. The
    gradient clip and the EMA are Lipschitz with constant 1. In float32, lr/ε = 1e5 times N·u exceeds the
    parameters themselves: a near-zero gradient whose sign flips moves its weight by a whole step. Such
    comparisons run in float64, where the bound stays below 1e-6 and a real error (a missing or doubled
    step) is ~lr.
    """
    return steps * (lr / eps) * reordered_tol(dtype, terms=terms, scale=grad_scale)


def adam_reach(*, lr: float, betas: tuple[float, float], steps: int) -> float:
    """How far apart two AdamW runs (no weight decay) from the same weights can be, per parameter and
    whatever their gradients, after ``steps`` steps: 2·steps·lr·(1 − β₁)/√(1 − β₂) when 1 − β₁ > √(1 − β₂),
    else 2·steps·lr (each bias-corrected step is at most that, Kingma & Ba 2015, §2.1); an EMA of either,
    a convex combination, stays within it. For float32 runs that sum in other orders, where
    :func:`after_adam_tol` exceeds the weights themselves: a weak bound, but one that holds on any CPU and
    still tells a run of other data, seed or step count (their weights differ by their initialisation's
    scale) from the same run."""
    b1, b2 = betas
    per_step = lr * (1 - b1) / (1 - b2) ** 0.5 if 1 - b1 > (1 - b2) ** 0.5 else lr
    return 2 * steps * per_step


STEP_SHARE = 0.01
"""The median weight of two runs of one training that differ only in summation order lies within this share of
one optimiser step (lr) of the other's; see :func:`assert_same_training`."""


def assert_same_training(two: dict, one: dict, *, params: dict) -> None:
    """Two float32 trainings that differ only in summation order (processes, nodes), from the trainers' resume
    state (``latest.pt``'s ``trainer``): the same training, and not one of another seed or step count.

    - Every weight, raw and EMA, of each network lies within :func:`adam_reach` of the other's: the worst case,
      which holds on any CPU (a near-zero gradient whose sign flips moves its weight by up to a whole step).
    - The median raw weight lies within STEP_SHARE·lr of the other's. A weight whose gradient is well above
      Adam's ε moves by lr·m̂/√v̂, which a relative gradient error r changes by about 2·r of a step; reordered
      float32 sums of N terms err by about √N·u relative (u = 6e-8), so over k steps the median weight drifts
      by ~2k·√N·u of a step: 7e-5 for k = 6, N = 10⁴, a hundred times below STEP_SHARE. A run one step
      shorter moves nearly every weight by a normalised step (its median about lr/2), and one of another seed
      starts at another initialisation (hundreds of lr): both fail. The EMA cannot tell step counts apart
      (it moves by (1 − decay)·lr per step), so the raw weights decide.
    """
    betas = tuple(params["train"]["betas"])
    steps = params["train"]["steps"]
    lrs = {"f": params["train"]["lr"], "ema": params["train"]["lr"], "V": params["potential"]["lr"]}
    for net, lr in lrs.items():
        if one.get(net) is None:  # the baseline has no V
            assert two.get(net) is None, net
            continue
        reach = adam_reach(lr=lr, betas=betas, steps=steps)
        diffs = []
        for key, ref in one[net].items():
            if ref.is_floating_point():
                torch.testing.assert_close(two[net][key], ref, rtol=0.0, atol=reach, msg=f"{net}.{key}")
                diffs.append((two[net][key].double() - ref.double()).abs().flatten())
        if net != "ema":
            median = float(torch.cat(diffs).median())
            assert median <= STEP_SHARE * lr, f"{net}: median weight {median / lr:.3g} steps apart"


def float32_of_float64_tol(*, float32_terms: int, scale: float, net_terms: int = 0, condition: float = 1.0) -> float:
    """:func:`reordered_tol` for a float32 quantity computed from float64 networks (agm.math.losses and the
    weightings cast their inputs to float32, for autocast): the networks' own float64 bound (``net_terms``,
    :data:`NET_CONDITION`), plus one float32 rounding of the cast and the ``float32_terms`` of the float32
    sums after it (``condition`` theirs, e.g. centring before a standard deviation). Two float64 values that
    differ below float32's resolution round to the same float32 value, or, across a rounding boundary, to
    neighbours one rounding apart: the cast's term covers that."""
    return (reordered_tol(torch.float64, terms=max(net_terms, 1), scale=scale, condition=NET_CONDITION)
            + reordered_tol(torch.float32, terms=float32_terms + 1, scale=scale, condition=condition))


def assert_reordered_close(actual: torch.Tensor, expected: torch.Tensor, *, terms: int, scale: float | None = None,
                           condition: float = 1.0, msg: str = "") -> None:
    """``actual`` and ``expected`` agree to :func:`reordered_tol` in their dtype (the coarser one if they
    differ), with ``scale`` the largest |expected| by default; rtol 0: the bound is absolute."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    dtype = max(actual.dtype, expected.dtype, key=lambda d: torch.finfo(d).eps)  # the coarser of the two
    scale = float(expected.abs().max()) if scale is None else scale
    atol = reordered_tol(dtype, terms=terms, scale=scale, condition=condition)
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=atol, check_dtype=False, msg=msg or None)


def sh(cmd: list[str], cwd: Path, **extra_env: str) -> str:
    """Run ``cmd`` in a temporary repository offline, on one thread, as a git user; its output, or fail the test
    with its tail. The caller's AGM_STATE_DIR is dropped: every repository keeps its state in its own
    .agm_state/ unless ``extra_env`` names one."""
    env = {**{k: v for k, v in os.environ.items() if k != "AGM_STATE_DIR"}, "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com", **extra_env}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout + res.stderr


def ran_stages(out: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", out))
