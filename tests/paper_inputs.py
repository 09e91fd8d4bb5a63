"""Inputs of the paper-path end-to-end test (tests/test_paper_path.py), made offline in temporary folders.

- :func:`synthetic_images`: deterministic 64x64 RGB images with some structure (a tilted colour ramp, a disc,
  noise), from a fixed numpy Generator;
- :func:`write_hf_dataset` / :func:`write_image_folder`: the same images as a ``datasets`` ``save_to_disk`` folder
  (an ``Image()`` column, as on the hub) and as PNG files;
- :func:`write_standin_inception`: a TorchScript file under clean-fid's weights name with the interface its
  ``InceptionV3W`` uses (a ``layers`` submodule, (B, 3, 299, 299) -> (B, 2048, 1, 1)): a fixed random conv net,
  not Inception-v3;
- :func:`write_network_guard`: a ``sitecustomize.py`` that refuses and records non-loopback network access of
  every Python process started with its folder on PYTHONPATH, and records which processes it guarded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from agm.math.metrics import INCEPTION_WEIGHTS_FILENAME

PAPER_TINY_SIZES: dict[str, Any] = {
    "train.steps": 2,                # one EMA snapshot before the final step: a two-point metric-vs-steps curve
    "train.batch_size": 2,           # the fewest for which AGM's batch softmax weights differ from 1
    "execution.log_every": 1,
    "execution.checkpoint_every": 2,
    "train.snapshot_every": 1,
    "sample.num_samples": 4,         # k + 1: precision/recall with k = 3
    "sample.batch_size": 4,
    "sample.nfe": 1,
    "sample.grid_nfe": 1,
    "sample.grid_size": 1,
    "eval.batch_size": 8,
    "eval.snapshot_samples": 4,      # k + 1
}
"""The only sizes shrunk from profiles/paper.yaml (each no larger than the paper's), for
tests/test_paper_path.py and scripts/gpu_check/paper_stages.py (the `stages` section runs the same stages on a GPU)."""

NETWORK_LOG_ENV = "AGM_TEST_NETWORK_LOG"
"""Environment variable naming the file the guard appends one JSON line to per refused access."""


def synthetic_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` RGB images (n, size, size, 3) uint8: a tilted colour ramp, a disc of another colour, pixel noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        tilt = rng.uniform(-1.0, 1.0, 2)
        img = rng.uniform(40, 215, 3) + 60 * (tilt[0] * xx + tilt[1] * yy)[..., None]
        cy, cx = rng.uniform(0.25, 0.75, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(0.1, 0.3) ** 2
        img[disc] = rng.uniform(0, 255, 3)
        img += rng.normal(0.0, 8.0, img.shape)
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def write_hf_dataset(folder: Path, images: np.ndarray, split: str = "train") -> Path:
    """``images`` (N, H, W, 3) as a ``datasets.Dataset`` with one ``Image()`` column ``image``, saved to disk.

    PIL images without a file name are stored as PNG bytes, so decoding gives the pixels back exactly.
    """
    import datasets

    features = datasets.Features({"image": datasets.Image()})
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(img) for img in images]}, features=features,
                                    split=datasets.NamedSplit(split))
    ds.save_to_disk(str(folder))
    return folder


def write_image_folder(folder: Path, images: np.ndarray) -> Path:
    """``images`` (N, H, W, 3) as ``000.png``, ``001.png``, ...: the folder loader's sorted order is the row order."""
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return folder


class _StandInInception(torch.nn.Module):
    """What clean-fid's ``InceptionV3W`` calls: ``layers`` maps (B, 3, 299, 299) in [-1, 1] to (B, 2048, 1, 1)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d(16),               # (B, 3, 16, 16)
            torch.nn.Conv2d(3, 64, kernel_size=4, stride=4),  # (B, 64, 4, 4)
            torch.nn.Tanh(),
            torch.nn.Conv2d(64, 2048, kernel_size=4),     # (B, 2048, 1, 1)
            torch.nn.Tanh(),
        )
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (self.layers[1], self.layers[3]):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / fan_in**0.5)
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def write_standin_inception(folder: Path, seed: int = 0) -> Path:
    """A TorchScript stand-in for clean-fid's Inception-v3, saved as ``folder/inception-2015-12-05.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INCEPTION_WEIGHTS_FILENAME
    with warnings.catch_warnings():  # torch.jit.script / save warn that TorchScript is deprecated
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        torch.jit.save(torch.jit.script(_StandInInception(seed).eval()), str(path))
    return path


_GUARD = '''"""Refuse and record non-loopback network access (written by tests/paper_inputs.py for one test run).

Installed only when {env} names a log file: socket.socket.connect / connect_ex to an address that is not
loopback, and socket.getaddrinfo of a host name that is neither an IP literal nor localhost, append one JSON line
(pid, call, address, argv) to that file and raise. Every guarded process appends its command line to the log's
".processes" sibling, so a test can check which processes the guard covered.
"""

import ipaddress
import json
import os
import socket
import sys

_LOG = os.environ.get("{env}")


def _local(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).split("%")[0]
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_literal(host):
    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


def _record(call, address):
    with open(_LOG, "a", encoding="utf-8") as fh:
        record = {{"pid": os.getpid(), "call": call, "address": repr(address), "argv": sys.orig_argv}}
        fh.write(json.dumps(record) + "\\n")


if _LOG:
    with open(_LOG + ".processes", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(sys.orig_argv) + "\\n")
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def _checked(sock, address, call):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _record(call, address)
            raise ConnectionRefusedError(f"network access refused by the test's sitecustomize: {{address!r}}")

    def connect(self, address):
        _checked(self, address, "connect")
        return _connect(self, address)

    def connect_ex(self, address):
        _checked(self, address, "connect_ex")
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not (_local(host) or _ip_literal(host)):
            _record("getaddrinfo", host)
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup refused by the test's sitecustomize: {{host!r}}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
'''


def write_network_guard(folder: Path) -> Path:
    """Write ``folder/sitecustomize.py`` (see the module docstring); put ``folder`` first on PYTHONPATH and set
    :data:`NETWORK_LOG_ENV` to a log file to guard a process and its Python children. The refused accesses go
    to that file, one JSON line each; the guarded processes' command lines to ``<log>.processes``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_GUARD.format(env=NETWORK_LOG_ENV), encoding="utf-8")
    return folder
