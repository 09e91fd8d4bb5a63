"""Tests for agm/math/time_bins.py and the trainer's time-only control."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import agm_trainer, reordered_tol

from agm.math.bridge import sample_bridge
from agm.math.losses import drift_loss, importance_weights
from agm.math.time_bins import TimeWeightTable, WeightByTime, bin_index, table_from_sums, time_weights
from agm.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

HYPER = dict(sigma_max=0.1, lr_f=1e-3, grad_clip=1.0, ema_decay=0.9)


def test_bin_index_edges():
    t = torch.tensor([0.0, 0.0999, 0.1, 0.5, 0.999, 1.0])
    assert bin_index(t, 10).tolist() == [0, 0, 1, 5, 9, 9]


def test_weight_by_time_sums_match_a_loop():
    gen = torch.Generator().manual_seed(0)
    acc = WeightByTime(bins=4)
    ts, ws = [], []
    for _ in range(3):
        t, w = torch.rand(16, generator=gen), torch.rand(16, generator=gen) + 0.5
        acc.add(t, w)
        ts.append(t)
        ws.append(w)
    t, w = torch.cat(ts), torch.cat(ws)
    for k in range(4):
        inside = (t >= k / 4) & (t < (k + 1) / 4)
        assert acc.counts[k].item() == inside.sum().item()
        # float64 sums of the same float32 values, accumulated per step against all at once
        expected = w[inside].double().sum().item()
        assert acc.sums[k].item() == pytest.approx(expected, rel=0, abs=reordered_tol(
            torch.float64, terms=len(w), scale=expected))


def test_table_has_unit_mean_and_fills_empty_bins_from_the_nearest():
    table = table_from_sums([2.0, 0.0, 0.0, 6.0], [2.0, 0.0, 0.0, 3.0])  # means 1, -, -, 2
    # bin 1 is nearest to bin 0 (mean 1); bin 2 is nearest to bin 3 (mean 2); unit mean over bins
    assert table.weights == pytest.approx((1 / 1.5, 1 / 1.5, 2 / 1.5, 2 / 1.5))
    assert sum(table.weights) / 4 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        table_from_sums([0.0], [0.0])


def test_time_weights_depend_on_t_alone_with_unit_batch_mean():
    table = torch.tensor([1.0, 2.0, 3.0, 4.0])
    t = torch.tensor([0.1, 0.3, 0.6, 0.9, 0.95])
    w = time_weights(t, table)
    raw = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0])
    torch.testing.assert_close(w, raw / raw.mean())
    assert w.mean().item() == pytest.approx(1.0)


def test_table_save_load_roundtrip_and_bad_file(tmp_path):
    table = table_from_sums([1.0, 3.0], [1.0, 1.0])
    table.save(tmp_path / "w.json")
    assert TimeWeightTable.load(tmp_path / "w.json") == table
    (tmp_path / "bad.json").write_text('{"weights": [1.0, -1.0], "counts": [1, 1]}')
    with pytest.raises(ValueError, match="bad.json"):
        TimeWeightTable.load(tmp_path / "bad.json")


def test_agm_trainer_accumulates_its_own_weights(make_unet, make_potential):
    """The per-bin sums equal the weights recomputed from V after its update, step by step."""
    gen = torch.Generator().manual_seed(3)
    trainer = agm_trainer(make_unet(), make_potential(), lam=5.0, weight_bins=5, **HYPER)
    expected = WeightByTime(bins=5)
    for _ in range(3):
        x1 = torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
        x0, eps, z = (torch.randn(8, 1, 8, 8, generator=gen) for _ in range(3))
        t = torch.rand(8, generator=gen)
        trainer.step(x1, x0, eps, t, z)
        with torch.no_grad():  # V has already taken this step's update
            v = trainer.V(sample_bridge(x0, x1, t, eps, 0.1).x_t)
        expected.add(t, importance_weights(v, 5.0, (0.1, 10.0)))
    torch.testing.assert_close(trainer.weight_by_time.sums, expected.sums)
    torch.testing.assert_close(trainer.weight_by_time.counts, expected.counts)
    assert trainer.weight_by_time.counts.sum().item() == 24


def test_time_only_step_is_the_weighted_drift_loss(make_unet):
    """One time-only step equals a hand-written step on Σ w(t_i) ‖f − v‖² / B with the table's w."""
    table = torch.tensor([0.5, 1.0, 1.5, 2.0])
    f = make_unet()
    f_ref = copy.deepcopy(f)
    trainer = agm_trainer(f, None, lam=0.0, time_table=table, **HYPER)
    gen = torch.Generator().manual_seed(1)
    x1 = torch.rand(8, 1, 8, 8, generator=gen) * 2 - 1
    x0, eps, z = (torch.randn(8, 1, 8, 8, generator=gen) for _ in range(3))
    t = torch.rand(8, generator=gen)
    stats = trainer.step(x1, x0, eps, t, z)

    bridge = sample_bridge(x0, x1, t, eps, 0.1)
    w = time_weights(t, table)
    loss = (w * drift_loss(f_ref(bridge.x_t, t), bridge.target)).mean()
    assert stats.drift_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    assert stats.w_mean.item() == pytest.approx(1.0, rel=1e-6)
    assert stats.w_max.item() > stats.w_min.item()
    opt = torch.optim.AdamW(f_ref.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(f_ref.parameters(), 1.0)
    opt.step()
    for p, q in zip(f.parameters(), f_ref.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_weight_sums_survive_a_resume(tmp_path, make_unet, make_potential):
    data = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    loop = dict(batch_size=8, seed=0, config={"k": 1}, checkpoint_every=2, log_every=2)

    def trainer():
        return agm_trainer(make_unet(), make_potential(), lam=1.0, weight_bins=10, **HYPER)

    full = trainer()
    train(full, data, steps=4, checkpoint_dir=tmp_path / "a", **loop)
    part = trainer()
    train(part, data, steps=2, checkpoint_dir=tmp_path / "b", **loop)
    resumed = trainer()
    train(resumed, data, steps=4, checkpoint_dir=tmp_path / "b", **loop)
    assert torch.equal(resumed.weight_by_time.sums, full.weight_by_time.sums)
    assert resumed.weight_by_time.counts.sum().item() == 32
