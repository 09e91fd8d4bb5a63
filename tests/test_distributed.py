"""Two-process CPU DDP (gloo) against one process with the same global batch (agm/train.py under torchrun).

Every rank draws the same global batch and keeps its slice; V's values are all-gathered so the weights are
normalised over the global batch (Eq. 11); DDP averages the gradients. Every rank logs the global batch's
statistics (losses averaged over the ranks, weights all-gathered) and sums the global batch into its
per-t weight table, so each rank's log and table are the single process's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from helpers import agm_trainer

from agm.accelerate import accelerate
from agm.nets import DriftUNet, Potential
from agm.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
STEPS = 4
# (λ, channels_last) of the two-process runs: the baseline, AGM (the all-gather of V's values), and AGM in
# channels_last (accelerate's order: layout before the DDP wrap); the single process runs the default layout
CASES = ((0.0, False), (0.5, False), (0.5, True))
LOGGED = ("drift_loss", "potential_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr")


def run_case(lam: float, channels_last: bool, checkpoint_dir: Path) -> dict[str, Any]:
    """Train the tiny baseline (λ = 0) or AGM for STEPS steps at global batch 8 in this process group."""
    torch.manual_seed(0)
    f = DriftUNet(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attn_resolutions=(4,), time_embed_dim=16, head_channels=8, groups=4)
    V = Potential(in_channels=1, widths=(8, 8, 8), pool=1, groups=4) if lam else None
    trainer = agm_trainer(f, V, lam=lam, sigma_max=0.1, lr_f=1e-3, lr_v=1e-3, ema_decay=0.9)
    accelerate(trainer, compile=False, channels_last=channels_last, distributed=dist.is_initialized())
    data = (torch.arange(32 * 64) * 7919 % 256).to(torch.uint8).reshape(32, 1, 8, 8)
    result = train(trainer, data, steps=STEPS, batch_size=8, seed=3, checkpoint_dir=checkpoint_dir,
                   config={"lam": lam}, checkpoint_every=2, log_every=1)
    state = trainer.state_dict()
    return {"history": result.history, "state": {k: state[k] for k in ("f", "ema", "V", "weight_by_time")}}


# One torchrun-style rank (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT set): joins the group through the
# train stage's init_distributed and runs every case, each with its own checkpoint folder per rank.
SCRIPT = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_distributed import CASES, run_case
from agm.distributed import init_process_group as init_distributed

out = Path(sys.argv[1])
rank = init_distributed(torch.device("cpu"))
for lam, channels_last in CASES:
    name = f"{{lam}}_{{int(channels_last)}}_{{rank}}"
    torch.save(run_case(lam, channels_last, out / f"ckpt_{{name}}"), out / f"result_{{name}}.pt")
torch.distributed.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_one_process(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(SCRIPT.format(tests=str(REPO / "tests")))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    ranks = [subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=REPO, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in (0, 1)]
    single = {lam: run_case(lam, False, tmp_path / f"single_{lam}") for lam in {lam for lam, _ in CASES}}
    for proc in ranks:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    for lam, channels_last in CASES:
        one = single[lam]
        r0, r1 = (torch.load(tmp_path / f"result_{lam}_{int(channels_last)}_{r}.pt") for r in (0, 1))
        assert [h["step"] for h in one["history"]] == list(range(1, STEPS + 1))
        for ref, a, b in zip(one["history"], r0["history"], r1["history"], strict=True):
            for key in LOGGED:
                for rank_log in (a, b):
                    assert rank_log[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), (lam, key, ref["step"])
        for key in ("sums", "counts"):  # the w(t) table of the time-only control sums the global batches
            ref = one["state"]["weight_by_time"][key]
            assert ref.sum() > 0 and (ref > 0).sum() > 1
            for rank_state in (r0, r1):
                torch.testing.assert_close(rank_state["state"]["weight_by_time"][key], ref, rtol=1e-5, atol=1e-6)
        for name in ("f", "ema", "V") if lam else ("f", "ema"):
            ref, s0, s1 = one["state"][name], r0["state"][name], r1["state"][name]
            for key in ref:
                assert torch.equal(s0[key], s1[key]), (lam, name, key)  # the DDP replicas stay identical
                # after Adam: a fraction of one lr = 1e-3 step (see AFTER_ADAM in tests/test_perf.py)
                torch.testing.assert_close(s0[key], ref[key], rtol=1e-4, atol=2e-5, msg=f"{lam} {name} {key}")
        name = f"{lam}_{int(channels_last)}"
        assert (tmp_path / f"ckpt_{name}_0" / "latest.pt").is_file()
        assert not (tmp_path / f"ckpt_{name}_1").exists()  # rank > 0 writes no checkpoint
