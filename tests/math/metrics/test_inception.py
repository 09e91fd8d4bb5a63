"""clean-fid wiring (agm/math/metrics/inception.py): missing weights, the weights' content hash, clean-fid's
own pipeline run with a small stand-in extractor through its ``custom_feat_extractor`` interface, and
``eval.inception_weights`` resolved (a path; ``auto`` with clean-fid's download stood in for; offline)."""

import hashlib
import http.client
import io
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import reordered_tol, stage_error
from PIL import Image

from agm.config.errors import StaleFeaturesError
from agm.io.provenance import file_sha256
from agm.math.metrics import (
    INCEPTION_WEIGHTS_FILENAME,
    MissingWeightsError,
    check_extractor,
    check_inception_weights,
    cleanfid_features,
    frechet_distance,
    inception_features,
    load_features,
    load_inception,
    save_features,
    weights_digest,
)
from agm.math.metrics.inception import (
    DOWNLOAD_TIMEOUT_S,
    WeightsDownloadError,
    inception_cache_dir,
    resolve_inception_weights,
)

ROOT = Path(__file__).resolve().parents[3]
# torch.jit.trace / save (the stand-in weights file) warn that TorchScript is deprecated.
_no_jit_warnings = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


class TinyExtractor(torch.nn.Module):
    """Fixed random strided conv + global average pool: (B, 3, 299, 299) in [0, 255] -> (B, 6)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, kernel_size=8, stride=8)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.01)
            self.conv.bias.zero_()
        self.seen_shapes: list[tuple[int, ...]] = []
        self.seen_max = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_shapes.append(tuple(x.shape))
        self.seen_max = max(self.seen_max, float(x.max()))
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def _images(seed: int, n: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 24)[None, None, None, :]
    noise = rng.integers(0, 120, (n, channels, 24, 24))
    return np.clip(ramp * rng.uniform(0.2, 1.0, (n, 1, 1, 1)) + noise, 0, 255).astype(np.uint8)


def _write_folder(folder, images: np.ndarray) -> None:
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")


def test_missing_weights_error_names_file_url_and_param(tmp_path):
    from cleanfid.downloads_helper import inception_url

    missing = tmp_path / INCEPTION_WEIGHTS_FILENAME
    with pytest.raises(MissingWeightsError) as info:
        inception_features(_images(0, 2), missing)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "\n" not in message
    assert str(missing) in message and INCEPTION_WEIGHTS_FILENAME in message
    assert inception_url in message and "eval.inception_weights" in message


def test_weights_file_must_carry_cleanfids_name(tmp_path):
    other = tmp_path / "inception.pt"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=INCEPTION_WEIGHTS_FILENAME):
        check_inception_weights(other)


class _StandinInception(torch.nn.Module):
    """Shaped as clean-fid's ``InceptionV3W`` uses the TorchScript file: a ``layers`` submodule mapping
    (B, 3, 299, 299) -> (B, 2048, 1, 1); here a global average pool and a random 1x1 conv, not Inception-v3."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(3, 2048, kernel_size=1))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in self.layers.parameters():
                param.copy_(torch.randn(param.shape, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _standin_weights(folder: Path, seed: int) -> Path:
    """A TorchScript file under clean-fid's weights name that ``InceptionV3W`` loads (:class:`_StandinInception`,
    40 kB); ``seed`` sets its weights, so two seeds give two contents."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INCEPTION_WEIGHTS_FILENAME
    torch.jit.save(torch.jit.trace(_StandinInception(seed), torch.zeros(1, 3, 8, 8)), str(path))
    return path


@_no_jit_warnings
def test_weights_digest_is_sha256_of_content_not_path(tmp_path):
    a = _standin_weights(tmp_path / "a", seed=0)
    digest = weights_digest(a)
    assert digest == hashlib.sha256(a.read_bytes()).hexdigest() and len(digest) == 64
    assert file_sha256(a, chunk=7) == digest  # streamed: the chunking does not matter
    copy = tmp_path / "elsewhere" / INCEPTION_WEIGHTS_FILENAME
    copy.parent.mkdir()
    shutil.copyfile(a, copy)
    assert weights_digest(copy) == digest  # another path, same bytes
    b = _standin_weights(tmp_path / "a", seed=1)  # same path, other weights
    assert b == a and weights_digest(b) != digest
    with pytest.raises(MissingWeightsError):
        weights_digest(tmp_path / "none" / INCEPTION_WEIGHTS_FILENAME)


@_no_jit_warnings
def test_features_from_replaced_weights_are_refused(tmp_path):
    """The features stage's cache records the digest; new content at the same path no longer matches."""
    weights = _standin_weights(tmp_path / "w", seed=0)
    old = weights_digest(weights)
    real = tmp_path / "features" / "train.npz"
    save_features(real, np.zeros((4, 2)), "inception", extractor=old)
    check_extractor(load_features(real), real, weights_digest(weights), weights)
    _standin_weights(tmp_path / "w", seed=1)
    new = weights_digest(weights)
    with pytest.raises(StaleFeaturesError, match="re-run the features stage") as info:
        check_extractor(load_features(real), real, new, weights)
    assert str(real) in str(info.value) and str(weights) in str(info.value)
    assert old in str(info.value) and new in str(info.value)


@_no_jit_warnings
@pytest.mark.parametrize("stage", ["evaluate", "steps"])
def test_stages_refuse_stale_features_before_any_work(tmp_path, stage, monkeypatch, capsys):
    """One line, exit 2, before samples or models are read (none exist here)."""


    weights = _standin_weights(tmp_path / "w", seed=0)
    features = tmp_path / "features"
    save_features(features / "train.npz", np.zeros((4, 2)), "inception", extractor="0" * 64)
    err = stage_error(stage, tmp_path, features, dict(feature_space="inception", inception_weights=str(weights)),
                      monkeypatch, capsys)
    assert "0" * 64 in err and weights_digest(weights) in err and "re-run the features stage" in err


def _fd_tol(a: np.ndarray, b: np.ndarray) -> float:
    """How far two float64 implementations of the Fréchet distance of the same features may land apart
    (ours: eigh of S₁^½ S₂ S₁^½; clean-fid: scipy's Schur-based sqrtm of S₁S₂).

    Both are backward stable: their eigenvalues of M = S₁S₂ (those of S₁^½ S₂ S₁^½) are within
    δ = helpers.reordered_tol(float64, N·D + D³ terms, ‖M‖₂) of the exact ones. The square root is ½-Hölder,
    |√x − √y| ≤ √|x − y|, so the trace of √M moves by at most D·√δ, whatever the condition of M (its
    smallest eigenvalues here are ~1e-21: a Lipschitz bound would be unbounded); the distance takes it
    twice, plus the rounding of its other terms (means, traces)."""
    n, d = len(a), a.shape[1]
    s1, s2 = np.cov(a.astype(np.float64), rowvar=False), np.cov(b.astype(np.float64), rowvar=False)
    m = s1 @ s2
    terms = n * d + d**3
    delta = reordered_tol(torch.float64, terms=terms, scale=float(np.abs(np.linalg.eigvals(m)).max()))
    rest = float(np.trace(s1) + np.trace(s2) + np.sum((a.mean(0) - b.mean(0)) ** 2.0))
    return 2 * d * delta**0.5 + reordered_tol(torch.float64, terms=terms, scale=rest)


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # inside clean-fid
def test_array_pipeline_equals_cleanfid_folder_pipeline(tmp_path):
    """Our in-memory path gives the features clean-fid computes from image files, and its
    compute_fid(custom_feat_extractor=...) gives the Fréchet distance of those features."""
    from cleanfid import fid as cleanfid

    extractor = TinyExtractor().eval()
    a, b = _images(1, 12), _images(2, 10)
    feats_a = cleanfid_features(a, extractor, batch_size=5)
    assert extractor.seen_shapes[0] == (5, 3, 299, 299) and extractor.seen_max <= 255.0
    assert feats_a.shape == (12, 6) and feats_a.dtype == np.float32
    feats_b = cleanfid_features(b, extractor, batch_size=5)

    _write_folder(tmp_path / "a", a)
    _write_folder(tmp_path / "b", b)
    cpu = torch.device("cpu")
    folder_a = cleanfid.get_folder_features(
        str(tmp_path / "a"),
        extractor,
        num_workers=0,
        batch_size=5,
        device=cpu,
        mode="clean",
        verbose=False,
    )
    # the same images, resize and batches of 5 through the same extractor in this process: bitwise
    np.testing.assert_array_equal(feats_a, folder_a)

    score = cleanfid.compute_fid(
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        mode="clean",
        num_workers=0,
        batch_size=5,
        device=cpu,
        custom_feat_extractor=extractor,
        verbose=False,
    )
    assert frechet_distance(feats_a, feats_b) == pytest.approx(score, rel=0, abs=_fd_tol(feats_a, feats_b))


def test_grey_images_are_repeated_to_rgb():
    extractor = TinyExtractor().eval()
    grey = _images(3, 4, channels=1)
    np.testing.assert_allclose(
        cleanfid_features(grey, extractor), cleanfid_features(np.repeat(grey, 3, axis=1), extractor)
    )
    with pytest.raises(ValueError, match="uint8"):
        cleanfid_features(grey.astype(np.float32), extractor)


# --- eval.inception_weights: a path, auto (clean-fid's download, stood in for), offline -------------------

@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty torch cache (``TORCH_HOME`` under tmp_path) and no network: ``urllib.request.urlopen``, which
    clean-fid's download calls, fails as it does offline. Returns the folder ``auto`` keeps the weights in."""

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _fetch_standin(monkeypatch) -> list[Path]:
    """Stand in for clean-fid's ``check_download_inception(fpath)``: write the stand-in weights where it would
    write the download; returns the list of folders it was called with."""
    from cleanfid import downloads_helper

    calls: list[Path] = []

    def fetch(fpath="./"):
        assert socket.getdefaulttimeout() == DOWNLOAD_TIMEOUT_S  # a dead network fails, it does not hang
        calls.append(Path(fpath))
        return str(_standin_weights(Path(fpath), seed=0))

    monkeypatch.setattr(downloads_helper, "check_download_inception", fetch)
    return calls


@_no_jit_warnings
def test_a_path_is_used_as_given_and_nothing_is_downloaded(tmp_path, offline_cache, monkeypatch):
    calls = _fetch_standin(monkeypatch)
    weights = _standin_weights(tmp_path / "w", seed=0)
    assert resolve_inception_weights(weights) == weights == resolve_inception_weights(str(weights))
    feats = inception_features(_images(0, 3), str(weights), batch_size=2)
    assert feats.shape == (3, 2048) and feats.dtype == np.float32
    assert calls == [] and not offline_cache.exists()


@_no_jit_warnings
def test_auto_downloads_once_with_cleanfid_into_torch_cache_then_reuses_it(offline_cache, monkeypatch):
    from cleanfid.inception_torchscript import InceptionV3W

    calls = _fetch_standin(monkeypatch)
    assert inception_cache_dir() == offline_cache
    path = resolve_inception_weights("auto")
    assert path == offline_cache / INCEPTION_WEIGHTS_FILENAME and path.is_file()
    assert len(calls) == 1 and calls[0].parent == offline_cache  # fetched into a folder beside it, then moved
    assert sorted(offline_cache.iterdir()) == [path]  # and that folder is gone
    assert socket.getdefaulttimeout() is None  # the download's timeout is not left behind
    model = load_inception("auto")
    assert isinstance(model, InceptionV3W) and not model.training
    images = _images(1, 3)
    feats = inception_features(images, "auto", batch_size=2)
    assert feats.shape == (3, 2048)
    # the same weights and batches of 2 in this process: bitwise
    np.testing.assert_array_equal(feats, cleanfid_features(images, model, batch_size=2))
    assert weights_digest("auto") == file_sha256(path)
    assert len(calls) == 1  # every later use reads the cached file


def test_auto_offline_fails_on_one_line_naming_file_url_and_key(offline_cache, capsys):
    from cleanfid.downloads_helper import inception_url

    with pytest.raises(MissingWeightsError) as info:
        resolve_inception_weights("auto")
    message = str(info.value)
    assert isinstance(info.value, WeightsDownloadError) and isinstance(info.value, FileNotFoundError)
    assert "\n" not in message
    assert INCEPTION_WEIGHTS_FILENAME in message and inception_url in message and "eval.inception_weights" in message
    assert str(offline_cache / INCEPTION_WEIGHTS_FILENAME) in message
    assert "Temporary failure in name resolution" in message  # urllib's reason, kept
    assert list(offline_cache.iterdir()) == []
    assert inception_url in capsys.readouterr().out  # the attempt was announced


class _BrokenOff(io.BytesIO):
    """An HTTP response that breaks off after its first chunk, as http.client reports a dropped connection."""

    def read(self, size=-1):
        if self.tell():
            raise http.client.IncompleteRead(b"", 1000)
        return super().read(10)


@_no_jit_warnings
def test_an_interrupted_download_leaves_no_file_to_take_for_the_weights(offline_cache, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *args, **kwargs: _BrokenOff(b"x" * 100))
    with pytest.raises(WeightsDownloadError, match="IncompleteRead"):
        resolve_inception_weights("auto")
    assert list(offline_cache.iterdir()) == []  # clean-fid's partial file went with its folder
    calls = _fetch_standin(monkeypatch)
    assert resolve_inception_weights("auto").is_file() and len(calls) == 1  # so the next run fetches again


@pytest.mark.parametrize("weights", ["auto", "nowhere/inception-2015-12-05.pt"])
def test_features_stage_resolves_the_weights_before_reading_data(tmp_path, offline_cache, monkeypatch, capsys,
                                                                  weights):
    """Offline without the file: one line, exit 2, before the (absent) images are read or anything is written."""
    from cleanfid.downloads_helper import inception_url

    from stages import features, run

    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["eval"].update(feature_space="inception", inception_weights=weights)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    absent, out = str(tmp_path / "absent.npz"), tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["features", "--params", str(tmp_path / "params.yaml"), "--train", absent,
                                      "--heldout", absent, "--out", str(out), "--metrics", str(tmp_path / "m.json")])
    with pytest.raises(SystemExit) as info:
        run(features.main)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert INCEPTION_WEIGHTS_FILENAME in err and inception_url in err and "eval.inception_weights" in err
    assert absent not in err and not out.exists() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("stage", ["evaluate", "steps"])
def test_stages_resolve_auto_before_any_work(tmp_path, stage, offline_cache, monkeypatch, capsys):
    from cleanfid.downloads_helper import inception_url

    features = tmp_path / "features"
    save_features(features / "train.npz", np.zeros((4, 2)), "inception", extractor="0" * 64)
    err = stage_error(stage, tmp_path, features, dict(feature_space="inception", inception_weights="auto"),
                      monkeypatch, capsys)
    assert INCEPTION_WEIGHTS_FILENAME in err and inception_url in err and "eval.inception_weights" in err


def test_importing_metrics_does_not_import_cleanfid():
    code = "import sys, agm.math.metrics; assert 'cleanfid' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
