"""Common random numbers: the baseline and AGM of one seed differ only by AGM's weighting.

They share f's initialisation, every batch (indices, x0, ε, t, z) of training, and every noise draw of sampling,
so a paired difference over seeds measures the weighting, not the luck of the draws (agm/variants.py,
agm/training/loop.py, agm/math/solver.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agm.config.params import load_params
from agm.math.solver import sample_batch
from agm.training.loop import train
from agm.variants import VARIANTS, build_run

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """Wraps a trainer and keeps a copy of every batch its loop hands to ``step``."""

    def __init__(self, trainer):
        self.inner, self.batches = trainer, []
        self.ema = trainer.ema

    def step(self, *batch):
        self.batches.append([x.clone() for x in batch])
        return self.inner.step(*batch)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def test_baseline_and_agm_of_one_seed_share_initialisation_and_every_training_draw(tmp_path):
    params = load_params(ROOT / "tests" / "tiny_params.yaml", VARIANTS["agm"].sections)
    data = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    runs = {v: build_run(params, v, 5, 1, 16, torch.device("cpu")) for v in ("baseline", "agm")}
    f_base, f_agm = runs["baseline"].trainer.f.state_dict(), runs["agm"].trainer.f.state_dict()
    assert all(torch.equal(f_base[k], f_agm[k]) for k in f_base)  # the same f at step 0
    recorded = {}
    for variant, run in runs.items():
        rec = Recorder(run.trainer)
        train(rec, data, steps=3, batch_size=8, seed=5, checkpoint_dir=tmp_path / variant, config=run.config,
              checkpoint_every=10, log_every=10)
        recorded[variant] = rec.batches
    for b_base, b_agm in zip(recorded["baseline"], recorded["agm"], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(b_base, b_agm, strict=True))  # x1, x0, ε, t, z
    other = build_run(params, "baseline", 6, 1, 16, torch.device("cpu")).trainer.f.state_dict()
    assert not all(torch.equal(f_base[k], other[k]) for k in f_base)  # and another seed differs


def test_sampling_noise_depends_on_the_seed_and_batch_only():
    # two drifts that are constants c1, c2: Euler steps add c·dt NFE times, i.e. exactly c, and the noise is the
    # same draw for both, so the samples differ by c1 − c2 wherever neither was clamped
    shape, nfe = (1, 4, 4), 8

    def constant(c):
        return lambda x, t: torch.full_like(x, c)

    a = sample_batch(constant(0.05), 1, 20, 10, shape, nfe, 0.3, seed=3)
    b = sample_batch(constant(-0.05), 1, 20, 10, shape, nfe, 0.3, seed=3)
    inside = (a.abs() < 1) & (b.abs() < 1)
    assert inside.float().mean() > 0.5
    # each run rounds at each of its 2 · NFE float32 additions, by at most eps · |x| with |x| < 8 here (a standard
    # normal start plus noise of SD 0.3 over 160 elements), and the difference adds both runs' errors
    bound = 2 * (2 * nfe) * 8 * torch.finfo(torch.float32).eps
    np.testing.assert_allclose((a - b)[inside].numpy(), 0.1, rtol=0, atol=bound)
    c = sample_batch(constant(0.05), 1, 20, 10, shape, nfe, 0.3, seed=4)
    assert not torch.allclose(a, c)
