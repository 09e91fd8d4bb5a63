"""FID features with clean-fid (Parmar et al. 2022): clean resize + Inception-v3 (paper profile).

The FID of the paper is the Fréchet distance (:mod:`agm.math.metrics.frechet`) between Inception-v3
pool features (2048-D) computed by clean-fid in its ``"clean"`` mode: each uint8 image is resized
to 299x299 by PIL bicubic on float32 channels (``cleanfid.resize.build_resizer("clean")``),
batched as float tensors in [0, 255], and passed through ``cleanfid.fid.get_batch_features`` to
the feature extractor: the same calls clean-fid's ``get_files_features`` makes for a folder,
with the images taken from memory instead of files. The extractor can be any callable that
clean-fid accepts as ``custom_feat_extractor`` (``(B, 3, 299, 299)`` float in [0, 255] ->
``(B, D)``); for the FID it is clean-fid's own ``InceptionV3W`` built from the TorchScript
weights file :func:`resolve_inception_weights` finds (docs/inception.md): ``auto`` fetches it
once with clean-fid's own download function into :func:`inception_cache_dir`, a path names a
local copy. DVC sees only the param's value, so :func:`weights_digest` hashes the file's
content: the ``features`` stage stores the hash with the cached real features and the stages
that compare against them refuse when the file has changed since.

clean-fid is imported inside the functions: importing it pulls in its download helpers and takes
seconds, which ``import agm.math.metrics`` should not pay.
"""

from __future__ import annotations

import http.client
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from agm.io.provenance import file_sha256

INCEPTION_WEIGHTS_FILENAME = "inception-2015-12-05.pt"
"""File name clean-fid's ``InceptionV3W`` loads (``cleanfid/inception_torchscript.py``)."""

WEIGHTS_PARAM = "eval.inception_weights"
"""params.yaml key holding ``auto`` or the local path of the weights file."""

AUTO = "auto"
"""The ``eval.inception_weights`` value that fetches the weights with clean-fid on first use."""

DOWNLOAD_TIMEOUT_S = 60.0
"""Socket timeout (per connect or read) while clean-fid downloads, which sets none: offline behind a firewall
that drops packets, the features stage fails instead of hanging."""

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def _inception_url() -> str:
    from cleanfid.downloads_helper import inception_url

    return str(inception_url)


class MissingWeightsError(FileNotFoundError):
    """No Inception-v3 weights file at the configured path; the message says what to fetch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            f"Inception-v3 weights for FID not found at '{path}': download "
            f"{INCEPTION_WEIGHTS_FILENAME} from {_inception_url()} (the file clean-fid uses) "
            f"and set {WEIGHTS_PARAM} in params.yaml to its local path, or to {AUTO}"
        )
        # Not ``filename``: OSError.__str__ would then print "[Errno None] None: <path>".
        self.path = os.fspath(path)


class WeightsDownloadError(MissingWeightsError):
    """``auto`` found no cached weights and clean-fid's download failed (offline); one line."""

    def __init__(self, path: str | os.PathLike[str], reason: BaseException) -> None:
        why = " ".join(f"{type(reason).__name__}: {reason}".split())
        FileNotFoundError.__init__(
            self,
            f"{WEIGHTS_PARAM} is {AUTO} but {INCEPTION_WEIGHTS_FILENAME} is not at '{path}' and fetching it "
            f"from {_inception_url()} failed ({why}); without the network, copy the file to '{path}' "
            f"or set {WEIGHTS_PARAM} in params.yaml to the path of a local copy",
        )
        self.path = os.fspath(path)


def check_inception_weights(weights_path: str | os.PathLike[str]) -> Path:
    """Return ``weights_path`` as a Path if it is the clean-fid weights file, else raise.

    Raises :class:`MissingWeightsError` if there is no file there, ValueError if its name is not
    ``inception-2015-12-05.pt`` (clean-fid's ``InceptionV3W`` loads it by that name from a folder).
    Cheap: call it before generating samples so a missing file fails fast.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise MissingWeightsError(path)
    if path.name != INCEPTION_WEIGHTS_FILENAME:
        raise ValueError(
            f"{WEIGHTS_PARAM} must point to a file named {INCEPTION_WEIGHTS_FILENAME} "
            f"(clean-fid loads it by that name), got '{path}'"
        )
    return path


def inception_cache_dir() -> Path:
    """Where ``auto`` keeps the weights: torch's checkpoint cache, ``torch.hub.get_dir()/checkpoints``.

    That is ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``): per user,
    kept across reboots, movable with ``TORCH_HOME``, and where torchvision and pytorch-fid keep their
    weights. clean-fid's own ``build_feature_extractor`` downloads into ``/tmp`` instead, which is
    cleared on reboot, private per job on many clusters and shared by all users (docs/inception.md).
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def _download_inception(path: Path) -> None:
    """Fetch the weights to ``path`` with clean-fid's ``check_download_inception``, atomically.

    clean-fid writes straight to ``<folder>/inception-2015-12-05.pt``, and an interrupted transfer
    would leave a truncated file that it (and we) would then take as present; so it downloads into
    a fresh folder beside ``path`` and the file is moved into place only once complete. Sockets time
    out after :data:`DOWNLOAD_TIMEOUT_S` meanwhile, unless the process set a default timeout itself.
    """
    from cleanfid import downloads_helper

    print(f"inception: downloading {INCEPTION_WEIGHTS_FILENAME} from {_inception_url()} to {path} "
          "(once, with clean-fid)", flush=True)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S if previous_timeout is None else previous_timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".inception-", dir=path.parent) as tmp:
            os.replace(downloads_helper.check_download_inception(fpath=tmp), path)
    except (OSError, http.client.HTTPException) as exc:  # urllib's URLError, timeouts, IncompleteRead
        raise WeightsDownloadError(path, exc) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)


def resolve_inception_weights(value: str | os.PathLike[str]) -> Path:
    """The local weights file that ``eval.inception_weights`` = ``value`` names.

    ``"auto"``: ``inception_cache_dir()/inception-2015-12-05.pt``, downloaded there by clean-fid
    on first use; :class:`WeightsDownloadError` (one line: file, URL, param key) when that fails.
    Anything else is a path, checked by :func:`check_inception_weights`. Cheap once the file is
    there: call it before any expensive work.
    """
    if os.fspath(value) != AUTO:
        return check_inception_weights(value)
    path = inception_cache_dir() / INCEPTION_WEIGHTS_FILENAME
    if not path.is_file():
        _download_inception(path)
    return path


def weights_digest(weights: str | os.PathLike[str]) -> str:
    """sha256 (64 hex digits) of the weights file's bytes: the content, not the path.

    ``weights``: ``"auto"`` or a path, resolved and checked by :func:`resolve_inception_weights`.
    """
    return file_sha256(resolve_inception_weights(weights))


def load_inception(
    weights: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """clean-fid's Inception-v3 (``InceptionV3W``, TorchScript) from local weights, in eval mode.

    ``weights``: ``"auto"`` or a path (:func:`resolve_inception_weights`). Built as clean-fid's
    ``build_feature_extractor("clean")`` builds it (``resize_inside=False``: inputs are already
    299x299), with ``download=False`` and the file's folder as its path, and without the
    ``DataParallel`` wrapper. Maps ``(B, 3, 299, 299)`` in [0, 255] -> ``(B, 2048)``.
    """
    path = resolve_inception_weights(weights)
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W(str(path.parent), download=False, resize_inside=False)
    return model.to(device).eval()


class _CleanResizeDataset(torch.utils.data.Dataset):
    """In-memory twin of ``cleanfid.utils.ResizeDataset``: same resizer, same tensor conversion."""

    def __init__(self, images_uint8: np.ndarray) -> None:
        from cleanfid.resize import build_resizer
        from torchvision.transforms.functional import to_tensor

        self.images = images_uint8
        self.fn_resize = build_resizer("clean")
        self.to_tensor = to_tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = self.images[i].transpose(1, 2, 0)  # (H, W, 3), as clean-fid reads a file
        resized = self.fn_resize(image)
        # As ResizeDataset: ToTensor() scales uint8 to [0, 1], hence * 255; float32 is kept.
        tensor = self.to_tensor(resized)
        return tensor * 255 if resized.dtype == np.uint8 else tensor


def cleanfid_features(
    images_uint8: np.ndarray,
    feat_model: FeatureExtractor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.ndarray:
    """Features of ``images_uint8: (N, C, H, W)`` uint8 (C in {1, 3}) through clean-fid's pipeline.

    ``feat_model`` is any clean-fid feature extractor (``custom_feat_extractor``): it receives
    ``(B, 3, 299, 299)`` float32 in [0, 255] on ``device``. One-channel images are repeated to
    RGB, as clean-fid's ``Image.convert("RGB")`` does for grey files. ``num_workers`` processes
    resize in parallel (clean-fid's DataLoader). Returns float32 ``(N, D)`` in input order.
    """
    from cleanfid.fid import get_batch_features

    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must be a uint8 (N, C, H, W) array with C in {{1, 3}}, "
            f"got {images.dtype} {images.shape}"
        )
    if len(images) == 0:
        raise ValueError("no images to compute features of")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    loader = torch.utils.data.DataLoader(
        _CleanResizeDataset(images),
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
    )
    device = torch.device(device)
    feats = [get_batch_features(batch, feat_model, device) for batch in loader]
    return np.concatenate(feats).astype(np.float32, copy=False)


def inception_features(
    images_uint8: np.ndarray,
    weights: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.ndarray:
    """clean-fid "clean" Inception-v3 features: uint8 ``(N, C, H, W)`` -> float32 ``(N, 2048)``.

    ``weights``: ``"auto"`` or the path of a local ``inception-2015-12-05.pt`` (params key
    ``eval.inception_weights``, :func:`resolve_inception_weights`); raises
    :class:`MissingWeightsError` when it cannot be had. The Fréchet distance of two such feature
    sets is the FID.
    """
    model = load_inception(weights, device)
    return cleanfid_features(
        images_uint8, model, batch_size=batch_size, device=device, num_workers=num_workers
    )
