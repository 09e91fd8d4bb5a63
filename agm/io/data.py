"""Datasets: fetch, prepare and store image sets (docs/spec.md §7: CelebA-HQ, huggan/celeba-hq, 64x64).

Every loader returns an :class:`ImageSet` of uint8 images ``(N, C, H, W)``; the model sees them
through :func:`to_model_range` as floats in [-1, 1] (docs/spec.md, notation: x1 ~ p_data scaled to [-1, 1]).

Sources:

- :func:`load_digits`: scikit-learn's 1,797 real 8x8 digits, shipped inside the package (offline);
- :func:`load_image_folder`: any local folder of images;
- :func:`load_hf_dataset`: a Hugging Face dataset, from the hub or from a ``save_to_disk`` folder.

Bad data raises :class:`DataError` with a one-line message naming the file, folder or count,
before any expensive work where it can be detected cheaply.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from agm.config.errors import DataError, exception_summary
from agm.io.atomic import atomic_path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
_MODES = {1: "L", 3: "RGB"}


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A set of images with labels.

    images: (N, C, H, W) uint8, C in {1, 3}, N >= 1.
    labels: (N,) int64, -1 where unknown.
    source: human-readable provenance, e.g. ``"sklearn.datasets.load_digits"`` or a path.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __post_init__(self) -> None:
        img, lab = self.images, self.labels
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 4:
            raise DataError(f"{self.source}: images must be a uint8 (N, C, H, W) array, "
                            f"got {_describe(img)}")
        if img.shape[1] not in _MODES or img.shape[0] == 0 or 0 in img.shape[2:]:
            raise DataError(f"{self.source}: images must have N >= 1, C in {{1, 3}}, H, W >= 1; "
                            f"got shape {img.shape}")
        if not isinstance(lab, np.ndarray) or lab.dtype != np.int64 or lab.shape != img.shape[:1]:
            raise DataError(f"{self.source}: labels must be an int64 ({img.shape[0]},) array, "
                            f"got {_describe(lab)}")

    def __len__(self) -> int:
        return self.images.shape[0]


def _describe(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _check_channels(channels: int) -> str:
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return _MODES[channels]


# ---------------------------------------------------------------------------------------------
# Shared preparation: decode, center-crop to square, resize, convert.


def _fit(img: Image.Image, resolution: int, mode: str) -> np.ndarray:
    """One PIL image -> (C, resolution, resolution) uint8: convert, center-crop, resize."""
    img = img.convert(mode)
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _prepare(
    items: Iterable[tuple[str, str | Path | IO[bytes]]], n: int, resolution: int, channels: int
) -> np.ndarray:
    """Decode ``n`` images given as ``(name, file)`` pairs -> (n, C, R, R) uint8.

    Any decoding failure raises :class:`DataError` naming the item.
    """
    mode = _check_channels(channels)
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    out = np.empty((n, channels, resolution, resolution), dtype=np.uint8)
    for i, (name, fp) in enumerate(items):
        try:
            with Image.open(fp) as img:
                out[i] = _fit(img, resolution, mode)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read image {name}: {exception_summary(err)}") from err
    return out


# ---------------------------------------------------------------------------------------------
# Loaders.


def load_digits(resolution: int) -> ImageSet:
    """scikit-learn's 1,797 8x8 digits (values 0..16) -> (1797, 1, R, R) uint8 in 0..255.

    Upsampled bilinearly (antialiased when ``resolution < 8``); labels are the digits 0..9.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    x = torch.from_numpy(digits.images).float().mul(255.0 / 16.0)[:, None]  # (N, 1, 8, 8)
    if resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=resolution < x.shape[-1])
    images = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return ImageSet(images, digits.target.astype(np.int64), "sklearn.datasets.load_digits")


def _image_files(folder: Path) -> list[Path]:
    files = (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p for p in files if p.is_file())


def load_image_folder(path: str | os.PathLike[str], resolution: int, channels: int) -> ImageSet:
    """Every image under ``path`` (png/jpg/jpeg/webp/bmp, recursive, sorted) -> (N, C, R, R).

    A first cheap pass opens each header (and verifies PNG chunk checksums), so a missing or
    empty folder, an unreadable or truncated file, and mixed modes or sizes are reported before
    any image is decoded. Labels are unknown (-1).
    """
    _check_channels(channels)
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    files = _image_files(folder)
    if not files:
        raise DataError(f"image folder {folder} holds no image files "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    first: tuple[Path, str, tuple[int, int]] | None = None
    for f in files:
        try:
            with Image.open(f) as img:
                mode, size = img.mode, img.size
                img.verify()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read image {f}: {exception_summary(err)}") from err
        if first is None:
            first = (f, mode, size)
        elif mode != first[1]:
            raise DataError(f"mixed image modes in {folder}: {f} is {mode}, "
                            f"but {first[0]} is {first[1]}")
        elif size != first[2]:
            raise DataError(f"mixed image sizes in {folder}: {f} is {size[0]}x{size[1]}, "
                            f"but {first[0]} is {first[2][0]}x{first[2][1]}")
    images = _prepare(((str(f), f) for f in files), len(files), resolution, channels)
    return ImageSet(images, np.full(len(files), -1, dtype=np.int64), str(folder))


def load_hf_dataset(
    name_or_path: str,
    split: str,
    image_column: str,
    resolution: int,
    channels: int,
    cache_dir: str | None = None,
) -> ImageSet:
    """A Hugging Face dataset split -> (N, C, R, R), cropped and resized like an image folder.

    ``name_or_path`` is a folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)
    or anything ``datasets.load_dataset`` accepts (a hub name such as ``"huggan/celeba-hq"``).
    Labels come from an integer ``label`` column when there is one, else -1.
    """
    import datasets

    _check_channels(channels)
    local = Path(name_or_path)
    from_disk = (local / "dataset_dict.json").is_file() or (local / "state.json").is_file()
    try:
        if from_disk:
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(name_or_path, cache_dir=cache_dir)
    except Exception as err:  # any failure here means the data is unavailable
        if from_disk:
            raise DataError(f"cannot load dataset folder {local}: {exception_summary(err)}") from err
        raise DataError(
            f"dataset {name_or_path!r} could not be fetched ({exception_summary(err)}); download it where "
            "the network works and point data.source at a local copy: a folder written by "
            "datasets' save_to_disk, or an image folder"
        ) from err

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"dataset {name_or_path} has no split {split!r}; "
                            f"splits: {', '.join(loaded)}")
        ds = loaded[split]
    elif loaded.split is not None and str(loaded.split) != split:
        raise DataError(f"dataset {name_or_path} holds split {str(loaded.split)!r}, not {split!r}")
    else:
        ds = loaded

    where = f"{name_or_path} (split {split})"
    if image_column not in ds.column_names:
        raise DataError(f"dataset {where} has no column {image_column!r}; "
                        f"columns: {', '.join(ds.column_names)}")
    if not isinstance(ds.features[image_column], datasets.Image):
        raise DataError(f"column {image_column!r} of dataset {where} is not an image column "
                        f"({ds.features[image_column]})")
    label = ds.features.get("label")
    if isinstance(label, datasets.ClassLabel) or (
        isinstance(label, datasets.Value) and label.dtype.startswith("int")
    ):
        labels = np.asarray(ds["label"], dtype=np.int64)
    else:
        labels = np.full(len(ds), -1, dtype=np.int64)

    raw = ds.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))

    def items() -> Iterator[tuple[str, str | IO[bytes]]]:
        i = 0
        for batch in raw.iter(batch_size=256):
            for cell in batch[image_column]:
                name = f"{where} row {i}" + (f" ({cell['path']})" if cell.get("path") else "")
                if cell.get("bytes") is not None:
                    yield name, io.BytesIO(cell["bytes"])
                elif cell.get("path"):
                    yield name, cell["path"]
                else:
                    raise DataError(f"{name} holds no image")
                i += 1

    images = _prepare(items(), len(ds), resolution, channels)
    return ImageSet(images, labels, where)


# ---------------------------------------------------------------------------------------------
# Splitting, storage, checks.


def split_holdout(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Deterministic random split into ``(train, heldout)``; ``round(N * fraction)`` held out.

    Each part keeps the original order of its images.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"held-out fraction must be in (0, 1), got {fraction}")
    n = len(data)
    n_held = round(n * fraction)
    if n_held == 0 or n_held == n:
        raise DataError(f"dataset {data.source} has {n} images: a held-out fraction of "
                        f"{fraction} leaves an empty part")
    perm = np.random.default_rng(seed).permutation(n)
    held, train = np.sort(perm[:n_held]), np.sort(perm[n_held:])
    tag = f"fraction={fraction}, seed={seed}"
    return (
        ImageSet(data.images[train], data.labels[train], f"{data.source} [train, {tag}]"),
        ImageSet(data.images[held], data.labels[held], f"{data.source} [held-out, {tag}]"),
    )


def save_image_set(path: str | os.PathLike[str], data: ImageSet) -> None:
    """Atomically write ``data`` to ``path`` as an uncompressed ``.npz``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file handle: savez adds no suffix
        np.savez(fh, images=data.images, labels=data.labels, source=np.array(data.source))


def load_image_set(path: str | os.PathLike[str]) -> ImageSet:
    """Read an :class:`ImageSet` written by :func:`save_image_set`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image set file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"images", "labels", "source"} <= keys:
                raise DataError(f"{path} is not an image set file (keys: {sorted(keys)})")
            images, labels, source = z["images"], z["labels"], str(z["source"][()])
    except DataError:
        raise
    except Exception as err:  # zipfile, pickle-refusal and format errors all mean a bad file
        raise DataError(f"{path} is not a readable image set file: {exception_summary(err)}") from err
    return ImageSet(images, labels, source)


def check_batch_size(data: ImageSet, batch_size: int) -> None:
    """Raise :class:`DataError` if ``data`` cannot fill one batch."""
    if len(data) < batch_size:
        raise DataError(f"dataset has {len(data)} images, fewer than batch size {batch_size} "
                        f"({data.source})")


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (..., C, H, W) in 0..255 -> float32 in [-1, 1]: x / 127.5 - 1."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 tensor, got {images_uint8.dtype}")
    return images_uint8.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float (..., C, H, W) in [-1, 1] -> uint8: clamp and round (x + 1) * 127.5."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
