"""Tests for agm/io/data.py: loaders, bad-data errors, storage, splits and value ranges."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agm.config.errors import DataError
from agm.io.data import (
    ImageSet,
    check_batch_size,
    load_digits,
    load_hf_dataset,
    load_image_folder,
    load_image_set,
    save_image_set,
    split_holdout,
    to_model_range,
    to_uint8,
)

# agm.io.data imports `datasets` lazily, so this runs before it reads its offline flags.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the Hugging Face libraries offline even if another module imported them first."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _pil(value: int, size: tuple[int, int] = (12, 8), mode: str = "RGB") -> Image.Image:
    """A constant image whose left half is ``value`` and right half is 255 - ``value``."""
    arr = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    arr[:, size[0] // 2:] = 255 - value
    return Image.fromarray(arr, "RGB").convert(mode)


def _write_folder(folder: Path, n: int = 3, **kw) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        _pil(40 * i, **kw).save(p)
    return paths


def _tiny(n: int = 10) -> ImageSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8)
    return ImageSet(images, np.arange(n, dtype=np.int64), "tiny")


# --- loaders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 16, 4])
def test_load_digits(resolution: int) -> None:
    data = load_digits(resolution)
    assert data.images.shape == (1797, 1, resolution, resolution)
    assert data.images.dtype == np.uint8 and data.labels.dtype == np.int64
    assert set(np.unique(data.labels)) == set(range(10))
    assert data.images.min() == 0
    assert data.images.max() >= (250 if resolution >= 8 else 200)  # antialiased when shrinking


def test_load_digits_native_resolution_is_exact_rescale() -> None:
    from sklearn.datasets import load_digits as sk

    expected = np.round(sk().images * (255 / 16)).astype(np.uint8)
    np.testing.assert_array_equal(load_digits(8).images[:, 0], expected)
    assert load_digits(8).images.max() == 255


@pytest.mark.parametrize("channels", [1, 3])
def test_load_image_folder(tmp_path: Path, channels: int) -> None:
    _write_folder(tmp_path / "imgs" / "sub", n=2)
    _pil(200).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    data = load_image_folder(tmp_path / "imgs", resolution=8, channels=channels)
    assert data.images.shape == (3, channels, 8, 8)
    assert (data.labels == -1).all()
    # sorted: a.png, sub/img0.png (0 | 255), sub/img1.png (40 | 215); each 12x8 image is
    # center-cropped to its middle 8x8, so columns 0-3 hold the left value and 4-7 the right.
    assert data.images[1, 0, 0].tolist() == [0] * 4 + [255] * 4
    assert (data.images[2, :, :, :4] == 40).all() and (data.images[2, :, :, 4:] == 215).all()
    small = load_image_folder(tmp_path / "imgs", resolution=4, channels=channels)
    assert small.images.shape == (3, channels, 4, 4)
    assert small.images[1, 0, :, 0].tolist() == [0] * 4  # far from the edge: no ringing


def test_load_image_folder_grayscale_to_rgb(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2, mode="L", size=(8, 8))
    data = load_image_folder(tmp_path, resolution=8, channels=3)
    assert data.images.shape == (2, 3, 8, 8)
    assert (data.images[:, 0] == data.images[:, 1]).all()


def _hf_dataset(n: int = 4):
    import datasets

    return datasets.Dataset.from_dict(
        {"image": [_pil(30 * i, size=(8, 8)) for i in range(n)], "label": list(range(n))},
        features=datasets.Features(
            {"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=n)}
        ),
    )


def test_load_hf_dataset_from_disk(tmp_path: Path) -> None:
    import datasets

    _hf_dataset().save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": _hf_dataset(), "test": _hf_dataset(2)}).save_to_disk(
        str(tmp_path / "dd")
    )
    data = load_hf_dataset(str(tmp_path / "ds"), "train", "image", resolution=8, channels=3)
    assert data.images.shape == (4, 3, 8, 8)
    assert data.labels.tolist() == [0, 1, 2, 3]
    assert (data.images[2, :, :, :4] == 60).all() and (data.images[2, :, :, 4:] == 195).all()
    test = load_hf_dataset(str(tmp_path / "dd"), "test", "image", resolution=4, channels=1)
    assert test.images.shape == (2, 1, 4, 4)
    assert test.source == f"{tmp_path / 'dd'} (split test)"


def test_load_hf_dataset_imagefolder_offline(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs", n=3, size=(8, 8))
    data = load_hf_dataset(
        str(tmp_path / "imgs"), "train", "image", 8, 3, cache_dir=str(tmp_path / "cache")
    )
    assert data.images.shape == (3, 3, 8, 8)
    assert (data.images[1, :, :, :4] == 40).all()


def test_load_hf_dataset_bad_split_and_column(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": _hf_dataset()}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"no split 'validation'; splits: train"):
        load_hf_dataset(str(tmp_path / "dd"), "validation", "image", 4, 3)
    with pytest.raises(DataError, match=r"no column 'img'; columns: image, label"):
        load_hf_dataset(str(tmp_path / "dd"), "train", "img", 4, 3)
    with pytest.raises(DataError, match=r"'label' .* is not an image column"):
        load_hf_dataset(str(tmp_path / "dd"), "train", "label", 4, 3)


def test_load_hf_dataset_offline_hub_failure() -> None:
    with pytest.raises(DataError, match=r"'huggan/celeba-hq' could not be fetched.*save_to_disk"):
        load_hf_dataset("huggan/celeba-hq", "train", "image", 64, 3)


# --- bad data -----------------------------------------------------------------------------------


def _msg(*parts: object) -> str:
    """A regex matching ``parts`` in order (paths escaped), anything between them."""
    return ".*".join(re.escape(str(p)) for p in parts)


def test_missing_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=_msg(tmp_path / "nope", "does not exist")):
        load_image_folder(tmp_path / "nope", 8, 3)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=_msg(tmp_path, "holds no image files")):
        load_image_folder(tmp_path, 8, 3)


def test_truncated_png(tmp_path: Path) -> None:
    paths = _write_folder(tmp_path, n=3, size=(32, 32))
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=_msg("cannot read image", paths[1])):
        load_image_folder(tmp_path, 8, 3)


def test_non_image_with_png_suffix(tmp_path: Path) -> None:
    _write_folder(tmp_path, n=2)
    (tmp_path / "fake.png").write_text("this is not a png")
    with pytest.raises(DataError, match=_msg("cannot read image", tmp_path / "fake.png")):
        load_image_folder(tmp_path, 8, 3)


def test_mixed_modes_and_sizes(tmp_path: Path) -> None:
    _write_folder(tmp_path / "modes", n=2)
    _pil(0, mode="L").save(tmp_path / "modes" / "z.png")
    with pytest.raises(DataError, match=_msg("mixed image modes", "modes/z.png is L", "is RGB")):
        load_image_folder(tmp_path / "modes", 8, 3)
    _write_folder(tmp_path / "sizes", n=2)
    _pil(0, size=(9, 9)).save(tmp_path / "sizes" / "z.png")
    with pytest.raises(DataError, match=_msg("mixed image sizes", "sizes/z.png is 9x9", "12x8")):
        load_image_folder(tmp_path / "sizes", 8, 3)


def test_check_batch_size() -> None:
    check_batch_size(_tiny(10), 10)
    with pytest.raises(DataError, match="dataset has 10 images, fewer than batch size 128"):
        check_batch_size(_tiny(10), 128)


def test_load_image_set_missing_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=_msg(tmp_path / "none.npz", "does not exist")):
        load_image_set(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DataError, match=_msg(tmp_path / "junk.npz", "is not a readable")):
        load_image_set(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match=_msg(tmp_path / "other.npz", "is not an image set file")):
        load_image_set(tmp_path / "other.npz")


def test_image_set_validation() -> None:
    with pytest.raises(DataError, match="uint8"):
        ImageSet(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2, np.int64), "x")
    with pytest.raises(DataError, match="C in"):
        ImageSet(np.zeros((2, 2, 4, 4), np.uint8), np.zeros(2, np.int64), "x")
    with pytest.raises(DataError, match="labels"):
        ImageSet(np.zeros((2, 3, 4, 4), np.uint8), np.zeros(3, np.int64), "x")


# --- storage, splits, ranges -------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    data = _tiny()
    save_image_set(tmp_path / "d" / "set.npz", data)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["set.npz"]
    back = load_image_set(tmp_path / "d" / "set.npz")
    assert back.images.tobytes() == data.images.tobytes() and back.images.shape == data.images.shape
    np.testing.assert_array_equal(back.labels, data.labels)
    assert back.source == "tiny"


def test_split_holdout() -> None:
    data = _tiny(10)
    train, held = split_holdout(data, 0.3, seed=1)
    assert len(train) == 7 and len(held) == 3
    ids = sorted(train.labels.tolist() + held.labels.tolist())
    assert ids == list(range(10))
    again = split_holdout(data, 0.3, seed=1)[1]
    np.testing.assert_array_equal(again.images, held.images)
    np.testing.assert_array_equal(held.images, data.images[held.labels])
    assert split_holdout(data, 0.3, seed=2)[1].labels.tolist() != held.labels.tolist()
    with pytest.raises(DataError, match="empty part"):
        split_holdout(data, 0.01, seed=0)
    with pytest.raises(DataError, match=r"in \(0, 1\)"):
        split_holdout(data, 1.0, seed=0)


def test_model_range_round_trip() -> None:
    v = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = to_model_range(v)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), v)
    assert to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
