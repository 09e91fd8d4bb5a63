"""Several seeds of one drift variant trained in one process, their parameters stacked (torch.func).

S lone trainers (agm.training.agm_trainer.AGMTrainer, built by agm.variants for S seeds) are trained as one:
their networks' parameters are stacked along a new leading dimension (``torch.func.stack_module_state``) and the
networks called through ``torch.func.vmap``, so each of the step's small operations runs once on S times the
work (a convolution becomes a grouped one) instead of S times. Every seed keeps its own random stream: the
batches, x0, ε, t and z of seed s are drawn from ``torch.Generator().manual_seed(s)`` in the lone loop's order
(agm.training.loop.train), and each seed's losses depend only on its own parameters. The gradient of the sum of
the S losses is therefore each seed's own gradient, and everything after it is per seed too: gradient clipping
takes each seed's own norm, AdamW and the EMA act elementwise. A stacked seed computes the lone run's step
up to floating-point rounding (a grouped convolution sums in another order than a lone one;
tests/training/test_stacked.py bounds the difference against a different seed's).

The weightings trained this way are those with no gradient through the weights: unit weights (the baseline),
AGM's potential weights (Eq. 11), the shuffled control and the time-only table. The stop-gradient ablation
(``no_detach``) and Action Matching train alone.

:func:`train_stacked` is the loop: it resumes every seed from, and checkpoints every seed to, the state folder
the lone train stage would use (``latest.pt``, ``ema_<step>.pt``, written with the lone trainer's
``state_dict``), so a seed trained here is finished by its own train stage in no steps, and the reverse.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from agm.io.data import to_model_range
from agm.math.bridge import sample_bridge
from agm.math.ema import ema_decay_at
from agm.math.losses import importance_weights, potential_loss
from agm.math.time_bins import time_weights
from agm.training.agm_trainer import AGMTrainer, StepStats, step_stats
from agm.training.checkpoints import LATEST, resume_state, save_checkpoint
from agm.training.loop import NonFiniteLossError, TrainResult, draw_batch
from agm.training.weightings import PotentialWeights, ShuffledWeights, TimeTableWeights, UnitWeights

_OPT_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable",
             "fused")


class _Stacked:
    """One network's S copies: stacked parameters (leaves that train), buffers, and a meta-device template."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        params, buffers = stack_module_state(list(modules))
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self.template = copy.deepcopy(modules[0]).to("meta")
        self.call = vmap(lambda p, b, *args: functional_call(self.template, (p, b), args))

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        return self.call(self.params, self.buffers, *args)

    def write_into(self, s: int, module: nn.Module) -> None:
        """Copy seed ``s``'s parameters and buffers into ``module`` (a lone copy)."""
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(self.params[name][s])
            for name, b in module.named_buffers():
                b.copy_(self.buffers[name][s])


def _stacked_adamw(opts: Sequence[torch.optim.Optimizer], params: list[torch.Tensor]) -> torch.optim.AdamW:
    """An AdamW over the stacked ``params`` with the lone optimisers' settings and their stacked state."""
    group = opts[0].param_groups[0]
    opt = torch.optim.AdamW(params, **{k: group[k] for k in _OPT_KEYS if k in group})
    opt.param_groups[0]["initial_lr"] = group.get("initial_lr", group["lr"])
    lone_states = [list(o.state_dict()["state"].values()) for o in opts]
    if lone_states[0]:  # a resumed run: every lone optimiser has state for every parameter
        for i, p in enumerate(params):
            per_seed = [states[i] for states in lone_states]
            opt.state[p] = {"step": per_seed[0]["step"].clone(),
                            **{k: torch.stack([st[k] for st in per_seed]).to(p.device)
                               for k in ("exp_avg", "exp_avg_sq")}}
    return opt


def _write_adamw(opt: torch.optim.AdamW, params: list[torch.Tensor], s: int, lone: torch.optim.Optimizer) -> None:
    """Load seed ``s``'s slice of the stacked optimiser's state into the lone optimiser ``lone``."""
    state = lone.state_dict()
    state["state"] = {i: {"step": opt.state[p]["step"].clone(),
                          **{k: opt.state[p][k][s].clone() for k in ("exp_avg", "exp_avg_sq")}}
                      for i, p in enumerate(params) if p in opt.state}
    for key in ("lr", "initial_lr"):
        state["param_groups"][0][key] = opt.param_groups[0][key]
    lone.load_state_dict(state)


def _clip_per_seed(params: list[torch.Tensor], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ for each seed's slice: g_s ← g_s · min(1, c / (‖g_s‖ + 1e-6)), with ‖g_s‖
    the 2-norm of seed s's gradients over all of ``params``."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (S,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))


class StackedTrainer:
    """S lone AGM-trainer copies (one per seed, same variant and settings) trained as one (module docstring).

    Args:
        trainers: the lone trainers, built for their seeds (agm.variants); their state (a resumed run's) is
            stacked here, and :meth:`write_into_trainers` writes the stacked state back into them.
    """

    def __init__(self, trainers: Sequence[AGMTrainer]) -> None:
        if not trainers:
            raise ValueError("StackedTrainer needs at least one trainer")
        first = trainers[0]
        kinds = {type(t.weighting) for t in trainers}
        if any(not isinstance(t, AGMTrainer) for t in trainers) or len(kinds) != 1:
            raise ValueError("StackedTrainer stacks AGM trainers of one weighting")
        if type(first.weighting) not in (UnitWeights, PotentialWeights, ShuffledWeights, TimeTableWeights) \
                or first.weighting.differentiable:
            raise ValueError(f"{type(first.weighting).__name__} trains alone: stacked training needs weights "
                             "without a gradient (unit, potential, shuffled or time-table weights)")
        if len({t.steps_done for t in trainers}) != 1:
            raise ValueError("the trainers to stack are at different steps")
        if first.scaler.is_enabled():
            raise ValueError("stacked training does not take fp16 (its GradScaler is one per run); use none or bf16")
        self.trainers = list(trainers)
        self.f = _Stacked([t.f for t in trainers])
        self.ema = _Stacked([t.ema.model for t in trainers])
        self.V = _Stacked([t.V for t in trainers]) if first.V is not None else None
        self.f_list = list(self.f.params.values())
        self.opt_f = _stacked_adamw([t.opt_f for t in trainers], self.f_list)
        self.V_list = list(self.V.params.values()) if self.V is not None else []
        self.opt_v = _stacked_adamw([t.opt_v for t in trainers], self.V_list) if self.V is not None else None
        self.steps_done, self.ema_updates = first.steps_done, first.ema.updates
        self.grad_clip, self.warmup_steps = first.grad_clip, first.warmup_steps
        self.amp_dtype, self.device = first.amp_dtype, first.device

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _begin_step(self) -> None:
        """The lone trainers' learning-rate warm-up (agm.training.trainer_base.TrainerBase._begin_step)."""
        factor = min(1.0, (self.steps_done + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        for opt in (self.opt_f, self.opt_v):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = group["initial_lr"] * factor
        self.steps_done += 1

    def _step_opt(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        if self.grad_clip > 0:
            _clip_per_seed(params, self.grad_clip)
        opt.step()

    def _weights(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(S, B) weights of each seed's batch, as each lone trainer's weighting computes them."""
        weighting = self.trainers[0].weighting
        if isinstance(weighting, UnitWeights):
            return torch.ones(t.shape, device=t.device)
        if isinstance(weighting, TimeTableWeights):
            return torch.stack([time_weights(t[s], tr.weighting.table.to(t.device))
                                for s, tr in enumerate(self.trainers)])
        inner = weighting.inner if isinstance(weighting, ShuffledWeights) else weighting
        with torch.no_grad(), torch.autocast(self.device.type, dtype=inner.amp_dtype,
                                             enabled=inner.amp_dtype is not None):
            v = self.V(x_t).float()
        w = torch.stack([importance_weights(v[s], inner.lam, inner.clamp) for s in range(len(v))])
        if isinstance(weighting, ShuffledWeights):
            w = torch.stack([w[s][torch.randperm(w.shape[1], generator=tr.weighting.generator).to(w.device)]
                             for s, tr in enumerate(self.trainers)])
        return w

    def step(self, x1: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor,
             z: torch.Tensor) -> list[StepStats]:
        """One step of every seed: x1, x0, eps, z (S, B, C, H, W), t (S, B); seed s's statistics at index s."""
        self._begin_step()
        S, B = t.shape
        lone = self.trainers[0]
        bridge = sample_bridge(x0.flatten(0, 1), x1.flatten(0, 1), t.flatten(), eps.flatten(0, 1),
                               lone.sigma_max, lone.schedule)
        x_t, target = bridge.x_t.view_as(x1), bridge.target.view_as(x1)
        loss_v = torch.zeros(S, device=x1.device)
        if self.V is not None:  # 2. update V first, each seed on its own L_V
            self.opt_v.zero_grad(set_to_none=True)
            with self._autocast():
                v_pair = self.V(torch.cat([x_t, z], dim=1)).float()
            loss_v = potential_loss(v_pair[:, :B], v_pair[:, B:], lone.margin, lone.mu).mean(1)
            loss_v.sum().backward()
            self._step_opt(self.opt_v, self.V_list)
        w = self._weights(x_t, t)  # 3. with the updated V
        for s, tr in enumerate(self.trainers):
            tr.weight_by_time.add(t[s], w[s])
        self.opt_f.zero_grad(set_to_none=True)  # 4. update f on the weighted drift loss
        with self._autocast():
            out = self.f(x_t, t)
        loss_f = (w * (out.float() - target.float()).square().flatten(2).mean(2)).mean(1)
        loss_f.sum().backward()
        self._step_opt(self.opt_f, self.f_list)
        with torch.no_grad():  # the EMA, as agm.math.ema.EMA.update
            d = ema_decay_at(self.ema_updates, lone.ema.decay, lone.ema.warmup)
            torch._foreach_lerp_(list(self.ema.params.values()), [p.detach() for p in self.f_list], 1.0 - d)
            for name, b in self.ema.buffers.items():
                b.copy_(self.f.buffers[name])
        self.ema_updates += 1
        clamp = getattr(lone.weighting, "clamp", None)
        return [step_stats(loss_f[s].detach(), loss_v[s].detach(), w[s], t[s], clamp) for s in range(S)]

    def write_into_trainers(self) -> None:
        """Write every seed's stacked state into its lone trainer, so ``trainer.state_dict()`` is that seed's
        checkpoint (and the lone trainer can be saved, sampled from or trained on alone)."""
        for s, tr in enumerate(self.trainers):
            self.f.write_into(s, tr.f)
            self.ema.write_into(s, tr.ema.model)
            tr.ema.updates, tr.steps_done = self.ema_updates, self.steps_done
            _write_adamw(self.opt_f, self.f_list, s, tr.opt_f)
            if self.V is not None:
                self.V.write_into(s, tr.V)
                _write_adamw(self.opt_v, self.V_list, s, tr.opt_v)

    def ema_state(self, s: int) -> dict[str, torch.Tensor]:
        """Seed ``s``'s EMA weights as a state dict of the lone f."""
        keys = self.trainers[s].ema.model.state_dict().keys()
        return {k: (self.ema.params.get(k, self.ema.buffers.get(k)))[s].detach().clone() for k in keys}


def _finite(stats: StepStats) -> bool:
    return bool(torch.isfinite(torch.stack([v.float() for v in vars(stats).values()])).all())


def train_stacked(
    stacked: StackedTrainer,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seeds: Sequence[int],
    checkpoint_dirs: Sequence[str | Path],
    configs: Sequence[dict[str, Any]],
    checkpoint_every: int,
    log_every: int,
    snapshot_every: int = 0,
    on_log: Callable[[int, int, dict[str, float]], None] | None = None,
) -> list[TrainResult]:
    """Train every seed of ``stacked`` to ``steps``, as agm.training.loop.train trains one (same draws, same
    checkpoints and snapshots in each seed's own state folder, same history records).

    Every seed resumes from its ``checkpoint_dirs[s]/latest.pt`` if there is one (each checked against its
    ``configs[s]``; all must be at the same step, and must have been loaded into the lone trainers before they
    were stacked, which :func:`stacked_from_state` does). ``on_log(s, step, record)`` is called per seed.
    ``step_time_s`` in a record is the wall time of one stacked step (all S seeds).
    """
    S = len(stacked.trainers)
    if not len(seeds) == len(checkpoint_dirs) == len(configs) == S:
        raise ValueError(f"{S} trainers but {len(seeds)} seeds, {len(checkpoint_dirs)} folders, {len(configs)} configs")
    device, dirs = data.device, [Path(d) for d in checkpoint_dirs]
    gens = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
    histories: list[list[dict[str, float]]] = [[] for _ in range(S)]
    states = [resume_state(d, c, steps) for d, c in zip(dirs, configs)]
    starts = {0 if st is None else st["step"] for st in states}
    if len(starts) != 1:
        raise ValueError(f"the seeds' checkpoints are at different steps {sorted(starts)}: resume them alone")
    start = starts.pop()
    for s, st in enumerate(states):
        if st is not None:
            gens[s].set_state(st["generator"])
            histories[s] = st["history"]
    if start != stacked.steps_done:
        raise ValueError(f"the stacked trainer is at step {stacked.steps_done} but the checkpoints at {start}: "
                         "build it with stacked_from_state")
    if on_log is not None:
        for s in range(S):
            for record in histories[s]:
                on_log(s, int(record["step"]), record)

    def save(step: int) -> None:
        stacked.write_into_trainers()
        for s, tr in enumerate(stacked.trainers):
            save_checkpoint(dirs[s] / LATEST, {
                "trainer": tr.state_dict(), "generator": gens[s].get_state(), "torch_rng": torch.get_rng_state(),
                "history": histories[s], "step": step, "config": configs[s]})

    shape = (batch_size, *data.shape[1:])
    t0, wall0, n_since = time.perf_counter(), time.perf_counter(), 0
    for step in range(start + 1, steps + 1):
        draws = []
        for gen in gens:  # the lone loop's draws, from each seed's generator
            idx, x0, eps, t, z = draw_batch(gen, len(data), shape, device)
            draws.append((to_model_range(data[idx]), x0, eps, t, z))
        x1, x0, eps, t, z = (torch.stack(parts) for parts in zip(*draws))
        stats = stacked.step(x1, x0, eps, t, z)
        n_since += 1
        snapshot = snapshot_every and step % snapshot_every == 0
        logging = step % log_every == 0 or step == steps
        if logging or step % checkpoint_every == 0 or snapshot:
            bad = [seeds[s] for s in range(S) if not _finite(stats[s])]
            if bad:
                raise NonFiniteLossError(f"non-finite loss or weights at step {step} for seed(s) {bad}; training "
                                         f"stopped, the last good checkpoints ({LATEST}) are kept")
        if logging:
            now = time.perf_counter()
            for s in range(S):
                record = {"step": step, **{k: float(v) for k, v in asdict(stats[s]).items()},
                          "step_time_s": (now - t0) / n_since}
                histories[s].append(record)
                if on_log is not None:
                    on_log(s, step, record)
            t0, n_since = now, 0
        if snapshot:
            for s in range(S):
                save_checkpoint(dirs[s] / f"ema_{step:08d}.pt", {"ema": stacked.ema_state(s), "step": step,
                                                                "config": configs[s]})
        if step % checkpoint_every == 0 or step == steps:
            save(step)
    stacked.write_into_trainers()
    wall = time.perf_counter() - wall0
    return [TrainResult(step=steps, history=histories[s], wall_time_s=wall, resumed_from=start) for s in range(S)]


def stacked_from_state(trainers: Sequence[AGMTrainer], checkpoint_dirs: Sequence[str | Path],
                       configs: Sequence[dict[str, Any]], steps: int) -> StackedTrainer:
    """Load each lone trainer from its ``latest.pt`` (if any; checked against its config and ``steps``) and stack
    them."""
    for tr, d, c in zip(trainers, checkpoint_dirs, configs, strict=True):
        state = resume_state(Path(d), c, steps)
        if state is not None:
            tr.load_state_dict(state["trainer"])
    return StackedTrainer(trainers)
