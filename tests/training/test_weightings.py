"""Tests for agm/training/weightings.py: the weight diagnostics on known vectors, the shuffled-weights control."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import reordered_tol

from agm.training.weightings import PotentialWeights, ShuffledWeights, UnitWeights, stream_seed, weight_diagnostics

pytestmark = pytest.mark.usefixtures("one_thread")


def test_diagnostics_of_equal_weights():
    d = weight_diagnostics(torch.ones(8))
    assert float(d.ratio) == 1.0 and float(d.ess) == pytest.approx(1.0) and float(d.clamped) == 0.0


def test_diagnostics_of_known_weights():
    w = torch.tensor([0.1, 0.1, 1.0, 2.8])  # mean 1
    d = weight_diagnostics(w, clamp=(0.1, 10.0))
    assert float(d.ratio) == pytest.approx(28.0)
    assert float(d.ess) == pytest.approx(4.0**2 / (4 * (0.01 + 0.01 + 1.0 + 7.84)))
    assert float(d.clamped) == 0.5  # the two weights at the lower bound
    one_hot = torch.tensor([1e-6, 1e-6, 1e-6, 4.0])
    w = one_hot.double()
    exact = float(w.sum() ** 2 / (4 * w.square().sum()))  # ≈ 1/4, from the float32 inputs' own values
    ess = float(weight_diagnostics(one_hot).ess)  # two float32 sums of 4 terms ≥ 0, a square and a quotient
    assert ess == pytest.approx(exact, rel=0, abs=reordered_tol(torch.float32, terms=2 * 4 + 3, scale=exact))


def test_e_lambda_bound_of_the_weights(make_potential):
    """Logits λ·sigmoid(V) lie in (0, λ): before the clamp, max w / min w ≤ e^λ."""
    V = make_potential()
    x = torch.randn(64, 1, 8, 8) * 5
    for lam in (0.1, 1.0, 3.0):
        w = PotentialWeights(V, lam=lam, clamp=(1e-9, 1e9))(x, torch.rand(64))
        assert float(weight_diagnostics(w).ratio) <= math.exp(lam) * (1 + 1e-5)


def test_shuffled_weights_keep_the_batch_multiset_and_break_the_pairing(make_potential):
    V = make_potential()
    x, t = torch.randn(32, 1, 8, 8) * 3, torch.rand(32)
    agm = PotentialWeights(V, lam=5.0, clamp=(0.1, 10.0))
    shuffled = ShuffledWeights(PotentialWeights(V, lam=5.0, clamp=(0.1, 10.0)), seed=0)
    w, w_shuffled = agm(x, t), shuffled(x, t)
    assert torch.equal(w.sort().values, w_shuffled.sort().values)  # the same multiset
    assert not torch.equal(w, w_shuffled)  # another pairing with the samples
    state = shuffled.state_dict()
    again = shuffled(x, t)
    shuffled.load_state_dict(state)
    assert torch.equal(shuffled(x, t), again)  # the permutation resumes with the generator


def test_shuffled_weights_do_not_replay_the_batch_stream(make_potential):
    """agm.training.loop draws every batch from torch.Generator().manual_seed(seed): the permutations come from a
    stream derived from (seed, "shuffled"), not from a second generator on that same seed."""
    V = make_potential()
    x, t = torch.randn(32, 1, 8, 8) * 3, torch.rand(32)
    w = PotentialWeights(V, lam=5.0, clamp=(0.1, 10.0))(x, t)
    for seed in (0, 3):
        shuffled = ShuffledWeights(PotentialWeights(V, lam=5.0, clamp=(0.1, 10.0)), seed=seed)
        batches = torch.Generator().manual_seed(seed)
        assert shuffled.generator.initial_seed() == stream_seed(seed, "shuffled") != seed
        assert not torch.equal(shuffled(x, t), w[torch.randperm(32, generator=batches)])
    seeds = {stream_seed(s, name) for s in range(4) for name in ("shuffled", "other")}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed(2, "shuffled") == stream_seed(2, "shuffled")  # derived, not drawn


def test_shuffled_weights_need_the_stop_gradient(make_potential):
    with pytest.raises(ValueError, match="stop-gradient"):
        ShuffledWeights(PotentialWeights(make_potential(), lam=1.0, clamp=(0.1, 10.0), detach=False), seed=0)


def test_unit_weights_are_ones():
    assert torch.equal(UnitWeights()(torch.zeros(5, 1, 2, 2), torch.rand(5)), torch.ones(5))
