"""Stage `features`: build the evaluation feature space and cache the real data's features.

digits: train the digit classifier (its held-out accuracy is a metric) and use its penultimate layer.
inception: clean-fid's Inception-v3 from `eval.inception_weights`: `auto` (clean-fid downloads the file once into
torch's cache) or a local path (docs/inception.md), resolved first, before any data is read. Its sha256 is stored
with the features (and reported as `inception_sha256`), so `evaluate` and `steps` refuse if the file changes behind
DVC's back (DVC sees only the param's value).
Also reports the real-vs-real reference: held-out real images against the training images.
"""

from __future__ import annotations

import argparse
import time

from agm.config.device import resolve_device
from agm.config.errors import DataError
from agm.config.params import load_params
from agm.io.atomic import atomic_dir, write_json
from agm.io.data import load_image_set
from agm.math.metrics import save_feature_net, save_features, train_feature_net, weights_digest
from agm.math.metrics.inception import resolve_inception_weights
from agm.math.metrics.kernel import KERNEL_SEED
from agm.math.metrics.sample_quality import feature_extractor, sample_quality
from stages import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--out", required=True, help="output folder: net.pt (digits), train.npz, heldout.npz")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    params = load_params(args.params, ["seed", "eval", "execution"])
    eval_params = params.eval
    space, device = eval_params.feature_space, resolve_device(params.execution.device)
    # First: `auto` downloads the weights now (once), and missing weights fail on one line before any work.
    weights = resolve_inception_weights(eval_params.inception_weights) if space == "inception" else None
    digest = weights_digest(weights) if weights else ""
    train, heldout = load_image_set(args.train), load_image_set(args.heldout)
    metrics: dict = {"feature_space": space}
    if digest:
        metrics["inception_sha256"] = digest
    t0 = time.perf_counter()
    with atomic_dir(args.out) as out:
        if space == "digits":
            if (train.labels < 0).any():
                raise DataError(f"{args.train} has no labels: eval.feature_space 'digits' trains a "
                                "classifier on them; use 'inception' for unlabelled data")
            result = train_feature_net(
                train.images, train.labels, epochs=eval_params.feature_net_epochs, batch_size=64,
                lr=eval_params.feature_net_lr, seed=params.seed,
                heldout_images=heldout.images, heldout_labels=heldout.labels, device=device,
            )
            save_feature_net(out / "net.pt", result.model)
            metrics["classifier_train_accuracy"] = round(result.train_accuracy, 4)
            metrics["classifier_heldout_accuracy"] = round(result.heldout_accuracy, 4)
        extract = feature_extractor(space, feature_net=out / "net.pt", inception_weights=weights,
                                    device=device, batch_size=eval_params.batch_size)
        f_train, f_heldout = extract(train.images), extract(heldout.images)
        save_features(out / "train.npz", f_train, space, extractor=digest)
        save_features(out / "heldout.npz", f_heldout, space, extractor=digest)
    q = sample_quality(f_train, f_heldout, k=eval_params.k, kernel_seed=KERNEL_SEED)  # unbiased: any n compares
    metrics["real_vs_real"] = {**q.record(space), "n_real": q.n_real, "n_fake": q.n_fake}
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(args.metrics, metrics)
    print(f"features[{space}]: {metrics}")


if __name__ == "__main__":
    run(main)
