"""The AGM trainer: one step in the paper's order, and one loop around it (spec §4, paper §4.5).

One step (spec §4):
1. draw x1 (a batch of data), x0, ε, t and build x_t, v_t on the bridge (Eqs. 6, 9);
2. update V on L_V (Eq. 10) — skipped when λ = 0, where V does not exist (the baseline);
3. with the updated V, compute the importance weights w = w(sg V(x_t)) (Eq. 11);
4. update f on L_f = mean_i w_i ‖f(x_t,i, t_i) − v_t,i‖² (Eq. 13), clip gradients, update the EMA.

The loop draws every random number from one ``torch.Generator`` whose state is checkpointed, so a run
that is killed and resumed reproduces an uninterrupted run bitwise on the CPU. Under torchrun every rank
draws the same global batch and keeps its slice, and the weights are normalised over the global batch,
so a multi-process run computes the single-process step (up to floating-point reduction order).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from agm.bridge import Schedule, sample_bridge
from agm.checkpoint import LATEST, clear_run, resume_state, save_checkpoint
from agm.ema import EMA
from agm.losses import drift_loss, importance_weights, potential_loss
from agm.time_weighting import WeightByTime, time_weights

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass(frozen=True)
class StepStats:
    """What one AGM step measured; 0-d tensors on the training device (read them only when logging).

    Every trainer returns its own frozen dataclass of 0-d tensors, named for what it measures; the loop
    logs its fields as they are, checks them all for NaN, and shows the first (the trained loss).
    """

    drift_loss: torch.Tensor
    potential_loss: torch.Tensor
    w_min: torch.Tensor
    w_mean: torch.Tensor
    w_max: torch.Tensor
    w_std: torch.Tensor
    w_t_corr: torch.Tensor


@dataclass(frozen=True)
class TrainResult:
    """Where training ended: the step reached, the logged history and the wall time of this process."""

    step: int
    history: list[dict[str, float]]
    wall_time_s: float
    resumed_from: int


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.float() - a.float().mean(), b.float() - b.float().mean()
    denom = (a.square().sum() * b.square().sum()).sqrt()
    return torch.where(denom > 0, (a * b).sum() / denom.clamp_min(1e-30), torch.zeros_like(denom))


class TrainerBase:
    """What every trainer shares: the trained network f, its EMA, its AdamW, autocast and the GradScaler.

    ``f_train`` is the module a step calls: f itself, or its DistributedDataParallel wrapper under torchrun.
    A trainer without a potential keeps ``V``, ``V_train`` and ``opt_v`` at None.
    """

    V: nn.Module | None = None
    V_train: nn.Module | None = None
    opt_v: torch.optim.Optimizer | None = None
    double_backward = False
    """Whether the step differentiates a gradient again (Action Matching): then it runs eagerly in the
    default memory format (agm.accelerate.accelerate), since torch.compile has no double backward."""

    def __init__(self, f: nn.Module, *, lr: float, betas: tuple[float, float], weight_decay: float,
                 grad_clip: float, ema_decay: float, amp: str, fused: bool) -> None:
        self.f = self.f_train = f
        self.grad_clip = grad_clip
        self.ema = EMA(f, ema_decay)
        self.adamw: dict[str, Any] = dict(betas=betas, weight_decay=weight_decay, fused=fused or None)
        self.opt_f = torch.optim.AdamW(f.parameters(), lr=lr, **self.adamw)
        self.amp_dtype = AMP_DTYPES[amp]
        self.device = next(f.parameters()).device
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")

    def _ddp(self, module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def wrap_distributed(self) -> None:
        """Wrap f in DistributedDataParallel (call after torch.distributed is initialised)."""
        self.f_train = self._ddp(self.f)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _optimizer_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params) -> None:
        self.scaler.scale(loss).backward()
        self._clipped_step(opt, params)

    def _clipped_step(self, opt: torch.optim.Optimizer, params) -> None:
        """Step ``opt`` on the gradients already accumulated, clipped to ``grad_clip`` (0: unclipped)."""
        if self.grad_clip > 0:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a detached per-process scalar over the torchrun processes (x itself in one process).

    Every process holds an equal slice of the global batch, so the mean of the slices' batch means is
    the global batch mean: what a single process would log.
    """
    x = x.detach()
    _, world = _world()
    if world == 1:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world


def gather(x: torch.Tensor) -> torch.Tensor:
    """The global batch of a per-sample tensor: the slices of all torchrun processes, in rank order.

    This process's own slice stays in the autograd graph (the no-detach ablation differentiates V's
    values through the weights); the other slices are constants.
    """
    rank, world = _world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts)


def local_slice(x_all: torch.Tensor) -> torch.Tensor:
    """This process's slice of a global-batch tensor (all of it in one process)."""
    rank, world = _world()
    b = len(x_all) // world
    return x_all[rank * b : (rank + 1) * b]


class AGMTrainer(TrainerBase):
    """Owns f, its EMA, V and both optimisers, and performs one training step (spec §4).

    Args:
        f: drift network f_θ(x, t).
        potential: V_φ(x), or None for the baseline (λ must then be 0).
        lam: importance-weight strength λ ≥ 0; 0 is the baseline (w ≡ 1).
        sigma_max, schedule: the bridge (spec §1).
        margin, mu: hinge margin m and L2 regulariser μ of L_V (spec §2).
        clamp: (w_min, w_max) of the weights (spec §3).
        detach: stop-gradient on V inside the weights; False reproduces the collapse ablation (§4.4):
            V is not updated first but takes one optimiser step on ∇(L_V + L_f), with the weights of step 3
            computed from its values before that step, so the only change is the gradient path. One
            process only: under torchrun the other ranks' V values would enter the global softmax as
            constants, a wrong gradient.
        lr_f, lr_v, betas, weight_decay: AdamW settings of the two optimisers.
        grad_clip: max gradient norm of f (and V); 0 disables clipping.
        ema_decay: EMA decay of f.
        amp: "none", "bf16" or "fp16" autocast (fp16 uses a GradScaler).
        fused: use fused AdamW (CUDA).
        time_table: the time-only control (no V, λ = 0): per-t-bin weights W_k (agm.time_weighting),
            applied as w_i = W_{k(t_i)} normalised to unit mean over the global batch.
        weight_bins: t-bins of the per-time weight sums S_k, N_k (agm.time_weighting) the trainer keeps;
            an AGM run's become the time-only control's table.
    """

    def __init__(
        self,
        f: nn.Module,
        potential: nn.Module | None,
        *,
        lam: float,
        sigma_max: float,
        schedule: Schedule = "cosine",
        margin: float = 1.0,
        mu: float = 0.01,
        clamp: tuple[float, float] = (0.1, 10.0),
        detach: bool = True,
        lr_f: float = 2e-4,
        lr_v: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        grad_clip: float = 1.0,
        ema_decay: float = 0.9999,
        amp: str = "none",
        fused: bool = False,
        time_table: torch.Tensor | None = None,
        weight_bins: int = 50,
    ) -> None:
        if (potential is None) != (lam == 0.0):
            raise ValueError("the baseline (lam = 0) has no potential; lam > 0 needs one")
        if time_table is not None and potential is not None:
            raise ValueError("time-only weighting replaces V: pass time_table with lam = 0 and no potential")
        if not detach and _world()[1] > 1:
            raise ValueError("the no-stop-gradient ablation (detach=False) runs in one process: under torchrun "
                             "its gradient through the global-batch softmax would miss the other ranks' terms")
        super().__init__(f, lr=lr_f, betas=betas, weight_decay=weight_decay, grad_clip=grad_clip,
                         ema_decay=ema_decay, amp=amp, fused=fused)
        self.V, self.V_train = potential, potential  # V_train: the DDP wrapper under torchrun
        self.lam, self.sigma_max, self.schedule = lam, sigma_max, schedule
        self.margin, self.mu, self.clamp, self.detach = margin, mu, clamp, detach
        self.opt_v = torch.optim.AdamW(potential.parameters(), lr=lr_v, **self.adamw) if potential else None
        self.time_table = time_table.to(self.device) if time_table is not None else None
        self.weight_by_time = WeightByTime(weight_bins, self.device)

    def wrap_distributed(self) -> None:
        """Wrap f and V in DistributedDataParallel (call after torch.distributed is initialised)."""
        super().wrap_distributed()
        if self.V is not None:
            self.V_train = self._ddp(self.V)

    def step(
        self, x1: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, z: torch.Tensor,
    ) -> StepStats:
        """One AGM step on this process's batch slice.

        Under torchrun the weights are normalised over the global batch (the slices are all-gathered), and
        the returned statistics are the global batch's on every rank (losses averaged over the processes).

        Args:
            x1: data in [-1, 1], (b, C, H, W); x0, eps, z: Gaussian noise of the same shape
            (z: the potential's negatives); t: (b,) in [0, 1].
        """
        bs = sample_bridge(x0, x1, t, eps, self.sigma_max, self.schedule)
        zero = torch.zeros((), device=x1.device)
        loss_v = zero
        if self.V is not None:
            self.opt_v.zero_grad(set_to_none=True)
            with self._autocast():
                v_pair = self.V_train(torch.cat([bs.x_t, z])).float()
            loss_v = potential_loss(v_pair[: len(z)], v_pair[len(z):], self.margin, self.mu).mean()
            if self.detach:  # 2. update V first (spec §4 step 2)
                self._optimizer_step(loss_v, self.opt_v, self.V.parameters())
        # 3. weights from the updated V (spec §4 step 3), normalised over the global batch
        t_all = gather(t)
        if self.time_table is not None:
            w_all = time_weights(t_all, self.time_table)
        elif self.V is None:
            w_all = torch.ones(len(t_all), device=x1.device)
        elif self.detach:
            with torch.no_grad(), self._autocast():
                v = self.V_train(bs.x_t).float()
            w_all = importance_weights(gather(v), self.lam, self.clamp)
        else:  # the ablation: V's values of this step, in the graph (one process only, see __init__)
            w_all = importance_weights(v_pair[: len(z)], self.lam, self.clamp, detach=False)
        w, w_all = local_slice(w_all), w_all.detach()
        self.weight_by_time.add(t_all, w_all)  # every rank sums the global batch: rank 0's table is global
        # 4. update f on the weighted drift loss (spec §4 step 4)
        self.opt_f.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.f_train(bs.x_t, t)
        per_sample = drift_loss(out, bs.target)
        loss_f = (w * per_sample).mean()
        if self.V is not None and not self.detach:
            # the ablation (Eq. 12): V's gradient is ∇L_V + ∇L_f, and V takes one clipped step on it
            self.scaler.scale(loss_v + loss_f).backward()
            self._clipped_step(self.opt_f, self.f.parameters())
            self._clipped_step(self.opt_v, self.V.parameters())
        else:
            self._optimizer_step(loss_f, self.opt_f, self.f.parameters())
        self.scaler.update()
        self.ema.update(self.f)
        return StepStats(
            drift_loss=global_mean(loss_f), potential_loss=global_mean(loss_v), w_min=w_all.min(),
            w_mean=w_all.mean(), w_max=w_all.max(), w_std=w_all.std() if len(w_all) > 1 else zero,
            w_t_corr=_corr(w_all, t_all),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "f": self.f.state_dict(),
            "ema": self.ema.model.state_dict(),
            "V": self.V.state_dict() if self.V is not None else None,
            "opt_f": self.opt_f.state_dict(),
            "opt_v": self.opt_v.state_dict() if self.opt_v is not None else None,
            "scaler": self.scaler.state_dict(),
            "weight_by_time": self.weight_by_time.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.f.load_state_dict(state["f"])
        self.ema.model.load_state_dict(state["ema"])
        self.opt_f.load_state_dict(state["opt_f"])
        if self.V is not None:
            self.V.load_state_dict(state["V"])
            self.opt_v.load_state_dict(state["opt_v"])
        self.scaler.load_state_dict(state["scaler"])
        self.weight_by_time.load_state_dict(state["weight_by_time"])


def train(
    trainer: AGMTrainer,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    checkpoint_dir: str | os.PathLike[str],
    config: dict[str, Any],
    checkpoint_every: int,
    log_every: int,
    snapshot_every: int = 0,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train for ``steps`` steps, resuming from ``checkpoint_dir/latest.pt`` if the same run wrote it.

    The run resumes only from a checkpoint with an equal ``config`` at a step ≤ ``steps``
    (agm.checkpoint.resume_state); otherwise the folder's old files are removed and training starts at 0.

    Args:
        trainer: the step owner (f, EMA, V, optimisers).
        data: the whole training set as uint8 (N, C, H, W) on the training device.
        steps: total steps to reach (a resumed run continues from its checkpoint's step).
        batch_size: global batch size (divided across torchrun processes).
        seed: seeds the one generator that draws batch indices, x0, ε, t and z.
        checkpoint_dir: holds ``latest.pt`` and, every ``snapshot_every`` steps, ``ema_<step>.pt``.
        config: the run's identity, JSON-able, stored in checkpoints; resuming requires an equal one.
        checkpoint_every: steps between checkpoints (the last step is always checkpointed).
        log_every: steps between reading the step statistics on the host (one sync each).
        on_log: called as on_log(step, record) for every logged step, the replayed ones of a resumed run
            included, so logs are complete after a resume.
        progress: show a tqdm progress bar.
    """
    rank, world = _world()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
    device, local = data.device, batch_size // world
    ckpt_dir = Path(checkpoint_dir)
    gen = torch.Generator(device=device).manual_seed(seed)
    history: list[dict[str, float]] = []
    start = 0
    state, why_not = resume_state(ckpt_dir, config, steps)
    if world > 1:
        dist.barrier()  # every rank has read latest.pt before rank 0 may clear it
    if state is None and rank == 0 and clear_run(ckpt_dir) and why_not:
        print(f"train: {why_not}; its files were removed and training starts from step 0", flush=True)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start = state["history"], state["step"]
    if on_log is not None:
        for record in history:
            on_log(int(record["step"]), record)

    def save(step: int, name: str) -> None:
        if rank == 0:
            save_checkpoint(ckpt_dir / name, {
                "trainer": trainer.state_dict(), "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "step": step, "config": config,
            })

    shape = (batch_size, *data.shape[1:])
    sl = slice(rank * local, (rank + 1) * local)
    first_bad = torch.full((), -1, device=device)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t0, wall0, n_since = time.perf_counter(), time.perf_counter(), 0
    for step in range(start + 1, steps + 1):
        # every rank draws the same global batch and keeps its slice (spec §4 step 1)
        idx = torch.randint(len(data), (batch_size,), generator=gen, device=device)
        x0 = torch.randn(shape, generator=gen, device=device)
        eps = torch.randn(shape, generator=gen, device=device)
        z = torch.randn(shape, generator=gen, device=device)
        t = torch.rand(batch_size, generator=gen, device=device)
        x1 = data[idx[sl]].float() / 127.5 - 1.0
        stats = trainer.step(x1, x0[sl], eps[sl], t[sl], z[sl])
        finite = torch.isfinite(torch.stack([v.float() for v in vars(stats).values()])).all()
        first_bad = torch.where((first_bad < 0) & ~finite, step, first_bad)
        n_since += 1
        snapshot = snapshot_every and step % snapshot_every == 0
        if step % log_every == 0 or step == steps or step % checkpoint_every == 0 or snapshot:
            _raise_if_bad(first_bad, stats, ckpt_dir)
        if step % log_every == 0 or step == steps:
            now = time.perf_counter()
            record = {"step": step, **{k: float(v) for k, v in asdict(stats).items()},
                      "step_time_s": (now - t0) / n_since}
            t0, n_since = now, 0
            history.append(record)
            if on_log is not None:
                on_log(step, record)
        if step % checkpoint_every == 0 or step == steps:
            save(step, LATEST)
        if snapshot and rank == 0:
            save_checkpoint(ckpt_dir / f"ema_{step:08d}.pt", {"ema": trainer.ema.model.state_dict(),
                                                             "step": step, "config": config})
        if bar is not None:
            bar.update(1)
            if step % log_every == 0:
                first = next(iter(vars(stats)))  # the trainer's loss, its stats' first field
                bar.set_postfix({first: f"{history[-1][first]:.4f}"})
    if bar is not None:
        bar.close()
    return TrainResult(step=steps, history=history,
                       wall_time_s=time.perf_counter() - wall0, resumed_from=start)


def _raise_if_bad(first_bad: torch.Tensor, stats: Any, ckpt_dir: Path) -> None:
    bad = int(first_bad)
    if bad < 0:
        return
    bad_now = [name for name, value in vars(stats).items() if not math.isfinite(float(value))]
    # the losses first (a NaN loss makes the weight statistics NaN too); if all turned finite again
    # since the bad step, name the trained loss
    which = [n for n in bad_now if n.endswith("_loss")] or bad_now or [next(iter(vars(stats)))]
    raise NonFiniteLossError(
        f"non-finite {' and '.join(which)} at step {bad}; training stopped, the last good checkpoint "
        f"{ckpt_dir / LATEST} is kept"
    )
