"""The training loop: one ``train(...)`` a reader can follow top to bottom (docs/spec.md §4, paper §4.5).

It runs any trainer (agm.training.agm_trainer.AGMTrainer,
agm.training.action_matching_trainer.ActionMatchingTrainer): each
step it draws the global batch, calls ``trainer.step``, and now and then logs, checkpoints and snapshots the
EMA. Every random number comes from one ``torch.Generator`` whose state is checkpointed, so a run that is
killed and resumed reproduces an uninterrupted run bitwise on the CPU. Under torchrun every rank draws the
same global batch and keeps its slice.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from agm.io.data import to_model_range
from agm.training.checkpoints import LATEST, resume_state, save_checkpoint
from agm.training.distributed import barrier, world


class NonFiniteLossError(RuntimeError):
    """A loss, a weight or an optimiser state became NaN or infinite; training stopped and the last good
    checkpoint was kept."""


class Trainer(Protocol):
    """What the loop needs of a trainer (agm.training.trainer_base.TrainerBase and its subclasses)."""

    ema: Any

    def step(self, x1: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
             z: torch.Tensor) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    """Where training ended: the step reached, the logged history and the wall time of this process."""

    step: int
    history: list[dict[str, float]]
    wall_time_s: float
    resumed_from: int



def draw_batch(gen: torch.Generator, n_images: int, shape: tuple[int, ...], device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training step's draws from ``gen``, in their fixed order (docs/spec.md §4 step 1): the indices of the
    batch's images among ``n_images``, then x0, ε and z of ``shape`` (B, C, H, W), then t of (B,). Returns
    (idx, x0, eps, t, z); a run that draws through this function reproduces another's batches from the same
    generator state (a resumed run, a stacked seed: agm.training.stacked)."""
    batch_size = shape[0]
    idx = torch.randint(n_images, (batch_size,), generator=gen, device=device)
    x0 = torch.randn(shape, generator=gen, device=device)
    eps = torch.randn(shape, generator=gen, device=device)
    z = torch.randn(shape, generator=gen, device=device)
    t = torch.rand(batch_size, generator=gen, device=device)
    return idx, x0, eps, t, z


def train(
    trainer: Trainer,
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
    """Train for ``steps`` steps, resuming from ``checkpoint_dir/latest.pt`` if there is one.

    ``checkpoint_dir`` belongs to this run (agm.training.run_state keys it by ``config``): a ``latest.pt`` of another
    ``config`` or past ``steps`` is refused (agm.training.checkpoints.resume_state), never removed.

    Args:
        trainer: the step owner (f, EMA, V, optimisers).
        data: the whole training set as uint8 (N, C, H, W) on the training device.
        steps: total steps to reach (a resumed run continues from its checkpoint's step).
        batch_size: global batch size (divided across torchrun processes).
        seed: seeds the one generator that draws batch indices, x0, ε, t and z.
        checkpoint_dir: this run's state folder: ``latest.pt`` and, every ``snapshot_every`` steps,
            ``ema_<step>.pt``.
        config: the run's identity, JSON-able, stored in checkpoints; resuming requires an equal one.
        checkpoint_every: steps between checkpoints (the last step is always checkpointed).
        log_every: steps between reading the step statistics on the host (one sync each).
        on_log: called as on_log(step, record) for every logged step, the replayed ones of a resumed run
            included, so logs are complete after a resume.
        progress: show a tqdm progress bar.
    """
    rank, size = world()
    if batch_size % size:
        raise ValueError(f"batch size {batch_size} is not divisible by the {size} processes")
    device, local = data.device, batch_size // size
    ckpt_dir = Path(checkpoint_dir)
    gen = torch.Generator(device=device).manual_seed(seed)
    history: list[dict[str, float]] = []
    start = 0
    state = resume_state(ckpt_dir, config, steps)
    barrier()  # every rank has read latest.pt before rank 0 may overwrite it
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
        # every rank draws the same global batch and keeps its slice (docs/spec.md §4 step 1)
        idx, x0, eps, t, z = draw_batch(gen, len(data), shape, device)
        x1 = to_model_range(data[idx[sl]])
        stats = trainer.step(x1, x0[sl], eps[sl], t[sl], z[sl])
        finite = torch.isfinite(torch.stack([v.float() for v in vars(stats).values()])).all()
        first_bad = torch.where((first_bad < 0) & ~finite, step, first_bad)
        n_since += 1
        snapshot = snapshot_every and step % snapshot_every == 0
        if step % log_every == 0 or step == steps or step % checkpoint_every == 0 or snapshot:
            _raise_if_bad(first_bad, stats, ckpt_dir)
            _raise_if_state_bad(trainer, step, ckpt_dir)
        if step % log_every == 0 or step == steps:
            now = time.perf_counter()
            record = {"step": step, **{k: float(v) for k, v in asdict(stats).items()},
                      "step_time_s": (now - t0) / n_since}
            t0, n_since = now, 0
            history.append(record)
            if on_log is not None:
                on_log(step, record)
        # the snapshot before latest.pt: a run killed between the two resumes from the previous checkpoint
        # and writes this snapshot again, where the other order would lose it for good
        if snapshot and rank == 0:
            save_checkpoint(ckpt_dir / f"ema_{step:08d}.pt", {"ema": trainer.ema.model.state_dict(),
                                                             "step": step, "config": config})
        if step % checkpoint_every == 0 or step == steps:
            save(step, LATEST)
        if bar is not None:
            bar.update(1)
            if step % log_every == 0:
                first = next(iter(vars(stats)))  # the trainer's loss, its stats' first field
                bar.set_postfix({first: f"{history[-1][first]:.4f}"})
    if bar is not None:
        bar.close()
    return TrainResult(step=steps, history=history,
                       wall_time_s=time.perf_counter() - wall0, resumed_from=start)


def _finite(tree: Any) -> bool:
    """Whether every floating-point tensor in a nested state (dicts, lists) is finite: one host read per device."""
    flags: dict[torch.device, list[torch.Tensor]] = {}

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                flags.setdefault(x.device, []).append(torch.isfinite(x).all())
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(tree)
    return all(bool(torch.stack(f).all()) for f in flags.values())


def _raise_if_state_bad(trainer: Trainer, step: int, ckpt_dir: Path) -> None:
    """The step's statistics are computed before its update: a non-finite gradient with a finite loss
    (clipping cannot tame an infinite norm) reaches the weights unseen there, so check what a checkpoint
    would hold, at every step that logs, checkpoints or snapshots (no host read on the other steps)."""
    if not _finite(trainer.state_dict()):
        raise NonFiniteLossError(
            f"non-finite weights or optimiser state after step {step} (its losses were finite: a non-finite "
            f"gradient); training stopped, the last good checkpoint {ckpt_dir / LATEST} is kept")


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
