"""Training-time speed switches: backend flags, channels_last and torch.compile for the trainer.

Order of the trainer switches (``apply_execution`` applies them so): channels_last first, then the DDP wrap,
then torch.compile of the wrapped module. DDP lays out its gradient buckets with the parameters' strides
when it is built, so channels_last must come before it; torch.compile goes outside DDP so that
Dynamo's DDP optimiser can split the graph at the bucket boundaries. Measurements live in agm.training.throughput.

:func:`amp_warning` is the one line to print at start-up when ``train.amp`` is slow on the device (bf16 on a
CPU without native bf16, fp16 on any CPU).
"""

from __future__ import annotations

import platform
import warnings
from typing import Any

import torch
from torch import nn

from agm.config.errors import exception_summary
from agm.training.trainer_base import TrainerBase


def configure_backends(device: torch.device) -> list[str]:
    """On CUDA: TF32 for float32 matmuls and convolutions, cuDNN autotuning; nothing elsewhere.

    Returns what was switched on. cuDNN autotuning picks kernels by timing, so CUDA runs are not bitwise
    reproducible (the bitwise-resume guarantee is for the CPU).
    """
    if device.type != "cuda":
        return []
    torch.set_float32_matmul_precision("high")  # TF32 tensor cores for float32 matmuls
    torch.backends.cudnn.allow_tf32 = True  # and for float32 convolutions (PyTorch's default, made explicit)
    torch.backends.cudnn.benchmark = True
    return ["tf32", "cudnn.benchmark"]


def cpu_has_native_bf16() -> bool:
    """Whether bf16 convolutions run natively on this CPU: oneDNN runs bf16 here and the CPU has bf16 instructions.

    Without oneDNN's bf16 (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: false on most CPUs without AVX-512)
    convolutions fall back to PyTorch's reference kernels; with it but without AVX512-BF16 (AMX CPUs have it
    too) oneDNN emulates bf16 with float32 instructions. On Arm oneDNN's check is the CPU's BF16 flag itself.
    """
    onednn = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return onednn and bool(torch.cpu._is_avx512_bf16_supported())
    return onednn


def amp_warning(device: torch.device, amp: str) -> str | None:
    """The one-line warning to print at start-up when autocast ``amp`` (train.amp) is slow on ``device``, or None.

    On the CPU: bf16 without native support (:func:`cpu_has_native_bf16`), and fp16 on any CPU (its convolution
    backward pass has no fast kernel, even where oneDNN reports fp16 support). On a GPU both are the fast path.
    """
    if device.type != "cpu":
        return None
    if amp == "bf16" and not cpu_has_native_bf16():
        return ("train.amp is bf16 on a CPU without native bf16 (AVX512-BF16 or Arm BF16): autocast emulates it, "
                "several to tens of times slower than float32; set train.amp: none for CPU runs")
    if amp == "fp16":
        return ("train.amp is fp16 on the CPU: fp16 convolutions have no fast backward pass there, tens of times "
                "slower than float32; set train.amp: none (or bf16 on a CPU with native bf16)")
    return None


class CompiledOrEager(nn.Module):
    """``torch.compile(module)`` that runs ``module`` eagerly instead when compiling fails.

    A missing toolchain (no C++ compiler for Inductor on the CPU, no Triton on a GPU) or an unsupported
    backend or Python raises either in ``torch.compile`` or at the first call, when Inductor lowers the
    forward graph; either way a one-line warning is issued and ``module`` is called eagerly from then on.
    The backward graph is lowered lazily, at the first backward pass, with the same toolchain as the forward.
    An error in a later compiled call (a recompilation for a new shape) also falls back; an error that is not
    the compiler's (a bad input, out of memory) then re-raises from the eager call.
    """

    def __init__(self, module: nn.Module, name: str) -> None:
        super().__init__()
        self.eager, self.name = module, name
        self.error: str | None = None
        self.compiled: nn.Module | None = None
        try:
            self.compiled = torch.compile(module)
        except Exception as exc:  # any compiler failure means: run eagerly
            self._fall_back(exc, "torch.compile")

    def _fall_back(self, exc: Exception, where: str) -> None:
        self.compiled, self.error = None, exception_summary(exc, limit=200, first_line=True)
        warnings.warn(f"{where} of {self.name} failed ({self.error}); running {self.name} eagerly", stacklevel=3)

    def forward(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:
                self._fall_back(exc, "the compiled call")
        return self.eager(*args)


def _match_state_layout(opt: torch.optim.Optimizer) -> None:
    """Give each optimiser state tensor its parameter's strides (fused AdamW on CUDA requires equal layouts)."""
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def apply_execution(trainer: TrainerBase, *, compile: bool, channels_last: bool,
                    distributed: bool = False) -> list[str]:
    """Apply the speed switches to ``trainer`` in place, in the one order that works; return what was applied.

    1. ``channels_last``: f, its EMA and V move to NHWC memory format (convolutions on tensor cores prefer it).
       Optimiser state, now and after every ``load_state_dict`` (a resumed run), follows the parameters' layout.
    2. ``distributed``: ``trainer.wrap_distributed()`` (DDP; torch.distributed must be initialised).
    3. ``compile``: ``trainer.f_train`` and ``trainer.V_train`` (the DDP wrappers when distributed) become
       :class:`CompiledOrEager` modules. The EMA, checkpoints and state dicts keep using the plain modules.

    A trainer whose step differentiates twice (``trainer.double_backward``: Action Matching) gets step 2 only:
    torch.compile has no double backward, and it trains in the default memory format.

    Call it once, after building the trainer and before the first step.
    """
    notes = []
    if trainer.double_backward:
        compile = channels_last = False
    if channels_last:
        for module in (trainer.f, trainer.ema.model, trainer.V):
            if module is not None:
                module.to(memory_format=torch.channels_last)
        for opt in (trainer.opt_f, trainer.opt_v):
            if opt is not None:
                _match_state_layout(opt)
                opt.register_load_state_dict_post_hook(_match_state_layout)
        notes.append("channels_last")
    if distributed:
        trainer.wrap_distributed()
        notes.append("ddp")
    if compile:
        for name in ("f", "V"):
            module = getattr(trainer, f"{name}_train")
            if module is None:
                continue
            wrapped = CompiledOrEager(module, name)
            if wrapped.compiled is None:
                notes.append(f"compile {name} failed ({wrapped.error}): eager")
            else:
                setattr(trainer, f"{name}_train", wrapped)
                notes.append(f"compile {name}")
    return notes
