"""Tests for agm/models/files.py: a trained model's file round-trips into the networks that sample."""

from __future__ import annotations

import pytest
import torch

from agm.math.action_matching import ActionDrift, ActionNet
from agm.models.files import has_potential, load_drift, load_potential, save_model
from agm.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_nets(make_unet, make_potential):
    f, V = make_unet(), make_potential()
    with torch.no_grad():
        torch.nn.init.normal_(f.conv_out.weight, std=0.1)  # a drift that is not identically zero
    return f, V


def test_model_file_round_trip(tmp_path, make_unet, make_potential, tiny_unet_kwargs,
                               tiny_potential_kwargs):
    f, V = _trained_nets(make_unet, make_potential)
    path = tmp_path / "model" / "model.pt"
    save_model(path, ema=f.state_dict(), unet=tiny_unet_kwargs, potential=V.state_dict(),
               potential_kwargs=tiny_potential_kwargs, step=7)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]
    f2, V2 = load_drift(path), load_potential(path)
    for a, b in ((f, f2), (V, V2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not b.training and not any(p.requires_grad for p in b.parameters())
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert f2(x, t).abs().max() > 0
    assert torch.equal(f2(x, t), f.eval()(x, t)) and torch.equal(V2(x), V.eval()(x))
    state = load_checkpoint(path)
    assert state["step"] == 7 and "lambda" not in state  # λ is the run's identity, not the model's
    assert has_potential(path)


def test_load_drift_with_snapshot_weights(tmp_path, make_unet, make_potential, tiny_unet_kwargs):
    f, _ = _trained_nets(make_unet, make_potential)
    snapshot = make_unet(seed=5).state_dict()
    path = tmp_path / "model.pt"
    save_model(path, ema=f.state_dict(), unet=tiny_unet_kwargs, potential=None,
               potential_kwargs=None, step=1)
    loaded = load_drift(path, state=snapshot)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in snapshot.items())


def test_load_potential_of_a_baseline_model_raises(tmp_path, make_unet, tiny_unet_kwargs):
    path = tmp_path / "model.pt"
    save_model(path, ema=make_unet().state_dict(), unet=tiny_unet_kwargs, potential=None,
               potential_kwargs=None, step=1)
    load_drift(path)  # the drift is there
    assert not has_potential(path)
    with pytest.raises(ValueError, match="baseline"):
        load_potential(path)


def test_action_model_file_keeps_its_time_scale(tmp_path, tiny_unet_kwargs):
    torch.manual_seed(0)
    s = ActionNet(time_scale=0.05, **tiny_unet_kwargs)
    with torch.no_grad():
        torch.nn.init.normal_(s.u.conv_out.weight, std=0.1)
    path = tmp_path / "model.pt"
    save_model(path, ema=s.state_dict(), unet=tiny_unet_kwargs, potential=None, potential_kwargs=None,
               step=1, kind="action", time_scale=0.05)
    drift = load_drift(path)
    assert isinstance(drift, ActionDrift) and drift.s.time_scale == 0.05
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    torch.testing.assert_close(drift(x, t), ActionDrift(s.eval())(x, t))
    with pytest.raises(ValueError, match="time_scale"):
        save_model(path, ema=s.state_dict(), unet=tiny_unet_kwargs, potential=None, potential_kwargs=None,
                   step=1, kind="action")
