"""Stage `sample`: draw images from a trained EMA drift with Euler–Maruyama, streamed to disk.

Writes samples.npy (uint8 (N, C, H, W), `sample.num_samples` at `sample.nfe`) batch by batch, and the
Fig. 3 grid (grid.npy, grid.png: `sample.grid_size` images at `sample.grid_nfe` from the seed's own grid
noise, `agm.sampler.grid_seed`, which no sample batch shares).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from agm.checkpoint import load_checkpoint
from agm.config import load_params, resolve_device
from agm.data import to_uint8
from agm.image_grid import save_image_grid
from agm.io import atomic_dir
from agm.model_file import image_shape, load_drift
from agm.sampler import euler_maruyama, grid_seed, sample_batches
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--seed", required=True, type=int, help="sampling seed (the run's training seed)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args()
    sample_params = load_params(args.params, ["sample"]).sample
    device = resolve_device(sample_params.device)
    f = load_drift(args.model, device)
    shape = image_shape(load_checkpoint(args.model))
    n, batch_size, nfe, g = sample_params.num_samples, sample_params.batch_size, sample_params.nfe, sample_params.g
    t0 = time.perf_counter()
    with atomic_dir(args.out) as out:
        arr = np.lib.format.open_memmap(out / "samples.npy", mode="w+", dtype=np.uint8, shape=(n, *shape))
        for b, x in tqdm(sample_batches(f, n, batch_size, shape, nfe, g, args.seed, device),
                         total=-(-n // batch_size), desc="sample", unit="batch"):
            arr[b * batch_size : b * batch_size + len(x)] = to_uint8(x).cpu().numpy()
        arr.flush()
        del arr
        gen = torch.Generator(device=device).manual_seed(grid_seed(args.seed))  # Fig. 3: the same noise for every model
        grid_size = sample_params.grid_size
        grid = to_uint8(euler_maruyama(f, (grid_size, *shape), sample_params.grid_nfe, g, gen, device)).cpu().numpy()
        np.save(out / "grid.npy", grid)
        save_image_grid(grid, out / "grid.png", nrow=int(grid_size**0.5), upscale=2)
    print(f"sample: {n} images at NFE {nfe} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    run(main)
