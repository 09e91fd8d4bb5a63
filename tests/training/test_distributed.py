"""Two-process CPU DDP (gloo) against one process with the same global batch (agm/training/loop.py under torchrun).

Every rank draws the same global batch and keeps its slice; V's values are all-gathered so the weights are
normalised over the global batch (Eq. 11); DDP averages the gradients. Every rank logs the global batch's
statistics (losses averaged over the ranks, weights all-gathered) and sums the global batch into its
per-t weight table, so each rank's log and table are the single process's.

Two processes sum in other orders (slices of 4, an all-reduce) than one process of 8, so the runs agree to
rounding, to the bounds of tests/helpers.py: the networks train in float64, where the bound after AdamW
steps (helpers.after_adam_tol) stays meaningful; the losses and weights are float32 (agm.math.losses casts), so
the statistics logged at the first step, where both runs hold the same weights, agree to float32 rounding
of their sums (their later values follow weights that differ within the float64 bound).
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
from helpers import accumulation_terms, after_adam_tol, agm_trainer, float32_of_float64_tol, reordered_tol

from agm.math.nets import DriftUNet, Potential
from agm.training.execution import apply_execution
from agm.training.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
STEPS = 4
B = 8  # the global batch
WORLD = 2
LR = 1e-3
# (λ, channels_last) of the two-process runs: the baseline, AGM (the all-gather of V's values), and AGM in
# channels_last (apply_execution's order: layout before the DDP wrap); the single process runs the default layout
CASES = ((0.0, False), (0.5, False), (0.5, True))
LOGGED = ("drift_loss", "potential_loss", "w_min", "w_mean", "w_max", "w_std", "w_t_corr")


def nets(lam: float) -> tuple[DriftUNet, Potential | None]:
    """The tiny f (and V for λ > 0) of every case, initialised from seed 0 in the default dtype."""
    torch.manual_seed(0)
    f = DriftUNet(in_channels=1, resolution=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                  attn_resolutions=(4,), time_embed_dim=16, head_channels=8, groups=4)
    return f, Potential(in_channels=1, widths=(8, 8, 8), pool=1, groups=4) if lam else None


def run_case(lam: float, channels_last: bool, checkpoint_dir: Path) -> dict[str, Any]:
    """Train the tiny baseline (λ = 0) or AGM for STEPS steps at global batch B in this process group, in
    float64; also return the w(t) table after the first step."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        f, V = nets(lam)
        trainer = agm_trainer(f, V, lam=lam, sigma_max=0.1, lr_f=LR, lr_v=LR, ema_decay=0.9)
        apply_execution(trainer, compile=False, channels_last=channels_last, distributed=dist.is_initialized())
        data = (torch.arange(32 * 64) * 7919 % 256).to(torch.uint8).reshape(32, 1, 8, 8)
        first: dict[str, Any] = {}

        def keep_first_table(step: int, record: dict) -> None:
            if step == 1:
                first.update({k: v.clone() for k, v in trainer.weight_by_time.state_dict().items()})

        result = train(trainer, data, steps=STEPS, batch_size=B, seed=3, checkpoint_dir=checkpoint_dir,
                       config={"lam": lam}, checkpoint_every=2, log_every=1, on_log=keep_first_table)
        state = trainer.state_dict()
    finally:
        torch.set_default_dtype(previous)
    return {"history": result.history, "first_table": first,
            "state": {k: state[k] for k in ("f", "ema", "V", "weight_by_time")}}


def logged_tol(key: str, ref: dict[str, float], net_terms: int) -> float:
    """helpers.float32_of_float64_tol for one statistic of the first step (the same weights in both runs):
    the losses are means of B non-negative per-sample values, taken as means of the ranks' means (B + WORLD
    terms); the weights' extremes and mean, sums of B values; their standard deviation and their
    correlation with t centre the values first, which divides by their spread: condition mean/std of w
    (and of t, whose mean/std is √3 for t uniform in [0, 1]: take 2)."""
    value, w_cond = abs(ref[key]), ref["w_mean"] / ref["w_std"] if ref["w_std"] else 1.0
    if key in ("drift_loss", "potential_loss"):
        return float32_of_float64_tol(float32_terms=B + WORLD, scale=value, net_terms=net_terms)
    if key in ("w_min", "w_mean", "w_max"):
        return float32_of_float64_tol(float32_terms=B, scale=value, net_terms=net_terms)
    if key == "w_std":
        return float32_of_float64_tol(float32_terms=2 * B, scale=value, net_terms=net_terms, condition=w_cond)
    return float32_of_float64_tol(float32_terms=3 * B, scale=1.0, net_terms=net_terms, condition=w_cond + 2.0)


# One torchrun-style rank (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT set): joins the group through the
# train stage's init_distributed and runs every case, each with its own checkpoint folder per rank.
SCRIPT = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path[:0] = [{here!r}, {tests!r}]
from test_distributed import CASES, run_case
from agm.training.distributed import init_process_group as init_distributed

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
    script.write_text(SCRIPT.format(here=str(Path(__file__).resolve().parent), tests=str(REPO / "tests")))
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
        f, V = nets(lam)
        x, t = torch.zeros(B, 1, 8, 8), torch.zeros(B)
        terms = accumulation_terms(f, x, t) + (accumulation_terms(V, torch.cat([x, x])) if V is not None else 0)
        for rank_run in (r0, r1):
            assert [h.keys() for h in rank_run["history"]] == [h.keys() for h in one["history"]]
            first, ref = rank_run["history"][0], one["history"][0]
            for key in LOGGED:
                assert first[key] == pytest.approx(ref[key], rel=0, abs=logged_tol(key, ref, terms)), (lam, key)
            # the w(t) table sums the global batch: the same t in every bin at every step, exactly; the first
            # step's w (float32 values, each within one rounding) summed into float64 bins
            for key in ("counts", "sums"):
                ref_table = one["first_table"][key]
                tol = reordered_tol(torch.float32, terms=B, scale=float(ref_table.max())) if key == "sums" else 0.0
                torch.testing.assert_close(rank_run["first_table"][key], ref_table, rtol=0.0, atol=tol)
            final = one["state"]["weight_by_time"]
            assert final["counts"].sum() == STEPS * B and (final["counts"] > 0).sum() > 1
            assert torch.equal(rank_run["state"]["weight_by_time"]["counts"], final["counts"])
        atol = after_adam_tol(torch.float64, terms=terms, lr=LR, steps=STEPS)
        for name in ("f", "ema", "V") if lam else ("f", "ema"):
            ref, s0, s1 = one["state"][name], r0["state"][name], r1["state"][name]
            for key in ref:
                # the DDP replicas stay identical: the all-reduce hands both the same gradient bytes, and one
                # machine's AdamW maps equal bytes to equal bytes
                assert torch.equal(s0[key], s1[key]), (lam, name, key)
                assert ref[key].dtype == torch.float64
                torch.testing.assert_close(s0[key], ref[key], rtol=0.0, atol=atol, msg=f"{lam} {name} {key}")
        name = f"{lam}_{int(channels_last)}"
        assert (tmp_path / f"ckpt_{name}_0" / "latest.pt").is_file()
        assert not (tmp_path / f"ckpt_{name}_1").exists()  # rank > 0 writes no checkpoint
