"""Tests for agm/training/stacked.py: a stacked seed trains as its lone run does, up to summation order.

The comparisons run in float64, where two summation orders of the same step differ by ~1e-16 relative and AdamW
passes that on unamplified (its update m̂/(√v̂ + ε) is sensitive to a gradient's rounding only where |g| ≲ ε =
1e-8), so after a few steps the two runs agree to ~1e-12. The bound used, 1e-9, is checked to be failed by
what must fail it: a run of another seed, and the same run one step short (both differ by ~lr = 1e-3).
"""

from __future__ import annotations

import pytest
import torch
from helpers import HYPER, B, agm_trainer, without_timing

from agm.training.checkpoints import LATEST, load_checkpoint
from agm.training.loop import train
from agm.training.stacked import StackedTrainer, stacked_from_state, train_stacked
from agm.training.weightings import NoStopGradientWeights, ShuffledWeights

pytestmark = pytest.mark.usefixtures("one_thread", "float64")

ATOL = 1e-9
SEEDS = (3, 5, 8)


def _lone(make_unet, make_potential, seed: int, kind: str):
    """The lone trainer of ``seed``: f and V initialised from it, as agm.variants builds a run."""
    f, V = make_unet(seed=seed), make_potential(seed=seed + 100)
    if kind == "baseline":
        return agm_trainer(f, None, **HYPER, warmup_steps=2)
    if kind == "time_only":
        return agm_trainer(f, None, time_table=torch.linspace(0.5, 1.5, 10), **HYPER, warmup_steps=2)
    trainer = agm_trainer(f, V, lam=2.0, **HYPER, warmup_steps=2)
    if kind == "shuffled":
        trainer.weighting = ShuffledWeights(trainer.weighting, seed)
    return trainer


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _train_lone(trainer, data, folder, seed, steps, **kw):
    return train(trainer, data, steps=steps, batch_size=B, seed=seed, checkpoint_dir=folder,
                 config={"seed": seed}, checkpoint_every=kw.pop("checkpoint_every", 2), log_every=2, **kw)


def _train_stack(trainers, data, folders, steps, **kw):
    stacked = kw.pop("stacked", None) or StackedTrainer(trainers)
    return stacked, train_stacked(stacked, data, steps=steps, batch_size=B, seeds=SEEDS, checkpoint_dirs=folders,
                                  configs=[{"seed": s} for s in SEEDS], checkpoint_every=kw.pop("checkpoint_every", 2),
                                  log_every=2, **kw)


@pytest.mark.parametrize("kind", ["agm", "baseline", "shuffled", "time_only"])
def test_each_stacked_seed_trains_as_its_lone_run(tmp_path, make_unet, make_potential, toy_data, kind):
    lone = {s: _lone(make_unet, make_potential, s, kind) for s in SEEDS}
    results = {s: _train_lone(lone[s], toy_data, tmp_path / f"lone{s}", s, 5) for s in SEEDS}
    trainers = [_lone(make_unet, make_potential, s, kind) for s in SEEDS]
    stacked, stacked_results = _train_stack(trainers, toy_data, [tmp_path / f"st{s}" for s in SEEDS], 5)
    for tr, s, res in zip(trainers, SEEDS, stacked_results):
        a, b = tr.state_dict(), lone[s].state_dict()
        for key in ("f", "ema") + (("V",) if kind in ("agm", "shuffled") else ()):
            assert _max_diff(a[key], b[key]) < ATOL, (s, key)
        assert a["ema_updates"] == b["ema_updates"] == 5 and a["steps_done"] == 5
        for opt in ("opt_f", "opt_v") if kind in ("agm", "shuffled") else ("opt_f",):
            for i, st in b[opt]["state"].items():
                assert _max_diff({k: v for k, v in a[opt]["state"][i].items()},
                                 {k: v for k, v in st.items()}) < ATOL
        torch.testing.assert_close(tr.weight_by_time.sums, lone[s].weight_by_time.sums, rtol=0, atol=ATOL)
        assert torch.equal(tr.weight_by_time.counts, lone[s].weight_by_time.counts)
        want, got = without_timing(results[s].history), without_timing(res.history)
        assert [r["step"] for r in got] == [r["step"] for r in want] == [2, 4, 5]
        for r, q in zip(got, want):
            assert r.keys() == q.keys()
            assert all(abs(r[k] - q[k]) < ATOL for k in r), (r, q)
    # what the bound must reject: another seed's run, and the same run one step short
    other = _lone(make_unet, make_potential, SEEDS[1], kind)
    _train_lone(other, toy_data, tmp_path / "other", SEEDS[1], 5)
    short = _lone(make_unet, make_potential, SEEDS[0], kind)
    _train_lone(short, toy_data, tmp_path / "short", SEEDS[0], 4)
    for wrong in (other, short):
        assert _max_diff(trainers[0].state_dict()["f"], wrong.state_dict()["f"]) > 1000 * ATOL


def test_a_stacked_run_writes_the_lone_runs_files_and_a_lone_run_resumes_it(tmp_path, make_unet, make_potential,
                                                                              toy_data):
    folders = [tmp_path / f"st{s}" for s in SEEDS]
    _train_stack([_lone(make_unet, make_potential, s, "agm") for s in SEEDS], toy_data, folders, 4, snapshot_every=2)
    lone_folder = tmp_path / "lone"
    _train_lone(_lone(make_unet, make_potential, SEEDS[1], "agm"), toy_data, lone_folder, SEEDS[1], 4,
                snapshot_every=2)
    assert sorted(p.name for p in folders[1].iterdir()) == sorted(p.name for p in lone_folder.iterdir()) == [
        "ema_00000002.pt", "ema_00000004.pt", LATEST]
    a, b = load_checkpoint(folders[1] / "ema_00000004.pt"), load_checkpoint(lone_folder / "ema_00000004.pt")
    assert a["step"] == b["step"] == 4 and _max_diff(a["ema"], b["ema"]) < ATOL
    # the lone loop takes the stacked seed's checkpoint and goes on to 7 steps: as a lone run of 7 steps
    resumed = _lone(make_unet, make_potential, SEEDS[1], "agm")
    result = _train_lone(resumed, toy_data, folders[1], SEEDS[1], 7)
    assert result.resumed_from == 4
    whole = _lone(make_unet, make_potential, SEEDS[1], "agm")
    _train_lone(whole, toy_data, tmp_path / "whole", SEEDS[1], 7)
    for key in ("f", "ema", "V"):
        assert _max_diff(resumed.state_dict()[key], whole.state_dict()[key]) < ATOL, key


def test_a_killed_stacked_run_resumes_where_it_stopped(tmp_path, make_unet, make_potential, toy_data):
    folders = [tmp_path / f"st{s}" for s in SEEDS]
    configs = [{"seed": s} for s in SEEDS]
    _train_stack([_lone(make_unet, make_potential, s, "agm") for s in SEEDS], toy_data, folders, 4)
    stacked = stacked_from_state([_lone(make_unet, make_potential, s, "agm") for s in SEEDS], folders, configs, 6)
    assert stacked.steps_done == 4
    _, results = _train_stack(stacked.trainers, toy_data, folders, 6, stacked=stacked)
    assert [r.resumed_from for r in results] == [4, 4, 4]
    whole = [_lone(make_unet, make_potential, s, "agm") for s in SEEDS]
    _train_stack(whole, toy_data, [tmp_path / f"whole{s}" for s in SEEDS], 6)
    for a, b in zip(stacked.trainers, whole):
        for key in ("f", "ema", "V"):
            assert _max_diff(a.state_dict()[key], b.state_dict()[key]) < ATOL, key


def test_weights_with_a_gradient_train_alone(make_unet, make_potential):
    trainers = [_lone(make_unet, make_potential, s, "agm") for s in SEEDS[:2]]
    for tr in trainers:
        tr.weighting = NoStopGradientWeights(tr.V, lam=1.0, clamp=(0.1, 10.0))
    with pytest.raises(ValueError, match="NoStopGradientWeights trains alone"):
        StackedTrainer(trainers)
