"""Stage `sample`: draw images from a trained EMA drift with Euler–Maruyama, streamed to disk.

Writes samples.npy (uint8 (N, C, H, W), `sample.num_samples` at `sample.nfe`) batch by batch, and the
Fig. 3 grid (grid.npy, grid.png: `sample.grid_size` images at `sample.grid_nfe` from the seed's own grid
noise, `agm.math.solver.grid_seed`, which no sample batch shares). With `execution.nproc` > 1 the batches are
shared among that many processes (torchrun); every batch has its own seed, so the images are those of one
process, and rank 0 alone writes. On a CPU one process draws as many batches at once as it has cores
(agm.models.samples.cpu_workers); the images are the same.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from agm.config.device import resolve_device
from agm.config.params import load_params
from agm.io.atomic import atomic_dir
from agm.io.data import to_uint8
from agm.io.image_grid import save_image_grid
from agm.math.solver import euler_maruyama, grid_seed
from agm.models.files import image_shape, load_drift
from agm.models.samples import cpu_workers, gathered_samples, sampling_drift
from agm.training.checkpoints import load_checkpoint
from agm.training.distributed import close_process_group, init_process_group, launch
from agm.training.execution import configure_backends
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--seed", required=True, type=int, help="sampling seed (the run's training seed)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args()
    params = load_params(args.params, ["sample", "execution"])
    sample_params = params.sample
    shape = image_shape(load_checkpoint(args.model))  # on the CPU: a bad file fails here, before any launch
    if (status := launch(params.execution.nproc, "stages.sample", sys.argv[1:])) is not None:
        sys.exit(status)
    device = resolve_device(params.execution.device)
    rank = init_process_group(device)
    configure_backends(device)
    f = sampling_drift(load_drift(args.model, device), device, amp=sample_params.amp,
                       channels_last=sample_params.channels_last, compile=sample_params.compile)
    n, batch_size, nfe, g = sample_params.num_samples, sample_params.batch_size, sample_params.nfe, sample_params.g
    batches = gathered_samples(f, n, batch_size, shape, nfe, g, args.seed, device, workers=cpu_workers(device))
    t0 = time.perf_counter()
    if rank > 0:  # draw this process's batches; rank 0 gathers and writes them
        for _ in batches:
            pass
        close_process_group()
        return
    with atomic_dir(args.out) as out:
        arr = np.lib.format.open_memmap(out / "samples.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))
        for b, x in tqdm(batches, total=-(-n // batch_size), desc="sample", unit="batch"):
            arr[b * batch_size : b * batch_size + len(x)] = x
        arr.flush()
        del arr
        close_process_group()
        gen = torch.Generator(device=device).manual_seed(grid_seed(args.seed))  # Fig. 3: the same noise for every model
        grid_size = sample_params.grid_size
        grid = to_uint8(euler_maruyama(f, (grid_size, *shape), sample_params.grid_nfe, g, gen, device)).cpu().numpy()
        np.save(out / "grid.npy", grid)
        save_image_grid(grid, out / "grid.png", nrow=int(grid_size**0.5), upscale=2)
    print(f"sample: {n} images at NFE {nfe} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    run(main)
