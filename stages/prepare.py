"""Stage `prepare`: fetch the dataset and write the training and held-out splits as .npz ImageSets."""

from __future__ import annotations

import argparse

from agm.config.errors import DataError
from agm.config.params import load_params
from agm.io.data import load_digits, load_hf_dataset, load_image_folder, save_image_set, split_holdout
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--train", required=True, help="output .npz of the training split")
    ap.add_argument("--heldout", required=True, help="output .npz of the held-out split")
    args = ap.parse_args()
    params = load_params(args.params, ["seed", "data"])
    data_params = params.data
    resolution, channels = data_params.resolution, data_params.channels
    if data_params.source == "digits":
        images = load_digits(resolution)
    elif data_params.source == "folder":
        images = load_image_folder(data_params.path, resolution, channels)
    else:
        images = load_hf_dataset(data_params.name, data_params.split, data_params.image_column, resolution, channels)
    if images.images.shape[1] != channels:
        raise DataError(f"data.channels is {channels} but {images.source} has {images.images.shape[1]}")
    train, heldout = split_holdout(images, data_params.holdout_fraction, params.seed)
    save_image_set(args.train, train)
    save_image_set(args.heldout, heldout)
    print(f"prepare: {len(train.images)} training and {len(heldout.images)} held-out images "
          f"{tuple(train.images.shape[1:])} from {images.source}")


if __name__ == "__main__":
    run(main)
