"""Tests for agm/config/params.py: params.yaml loads; every malformed variant fails with one clear line."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agm.config.device import resolve_device
from agm.config.errors import ParamsError
from agm.config.params import (
    DataParams,
    ModelParams,
    Params,
    TrainParams,
    load_params,
)

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"


@pytest.fixture(scope="module")
def default_raw() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def _write(tmp_path: Path, raw) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_default_params_load(default_raw):
    p = load_params(PARAMS)
    assert isinstance(p, Params)
    assert isinstance(p.train, TrainParams) and isinstance(p.data, DataParams)
    assert p.lam == float(default_raw["lambda"]) and isinstance(p.lam, float)
    assert p.seed == default_raw["seed"]
    assert isinstance(p.model.channel_mult, tuple) and isinstance(p.potential.clamp, tuple)
    assert p.model.kwargs(p.data.channels, p.data.resolution)["resolution"] == p.data.resolution
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.steps = 1  # type: ignore[misc]


def test_sections_subset_leaves_others_none():
    p = load_params(PARAMS, ["seed", "data"])
    assert p.data is not None and p.seed is not None
    assert p.train is None and p.model is None and p.lam is None


def test_an_int_is_accepted_for_a_float(tmp_path, default_raw):
    raw = copy.deepcopy(default_raw)
    raw["lambda"], raw["train"]["lr"] = 1, 1
    p = load_params(_write(tmp_path, raw))
    assert p.lam == 1.0 and isinstance(p.lam, float) and isinstance(p.train.lr, float)


def test_unknown_top_level_key_is_caught_even_when_not_asked_for(tmp_path, default_raw):
    raw = {**copy.deepcopy(default_raw), "trian": {}}
    with pytest.raises(ParamsError, match="trian"):
        load_params(_write(tmp_path, raw), ["seed"])


def _set(section: str | None, key: str, value):
    def mutate(raw):
        (raw if section is None else raw[section])[key] = value

    return mutate


def _drop(section: str | None, key: str):
    def mutate(raw):
        del (raw if section is None else raw[section])[key]

    return mutate


# (id, mutation of the default params, the key the one-line message must name)
BAD = [
    ("unknown-top-level-key", _set(None, "lamda", 0.1), "lamda"),
    ("unknown-section-key", _set("train", "learning_rate", 1e-3), "train.learning_rate"),
    ("missing-top-level-key", _drop(None, "seed"), "seed"),
    ("missing-section-key", _drop("train", "lr"), "train.lr"),
    ("missing-section", _drop(None, "sample"), "sample"),
    ("section-not-a-mapping", _set(None, "train", 5), "train"),
    ("string-for-int", _set("train", "steps", "600"), "train.steps"),
    ("float-for-int", _set("train", "batch_size", 64.5), "train.batch_size"),
    ("integral-float-for-int", _set("sample", "nfe", 50.0), "sample.nfe"),
    ("list-for-scalar", _set("train", "lr", [1e-3, 2e-3]), "train.lr"),
    ("bool-for-int", _set("train", "steps", True), "train.steps"),
    ("bool-for-float", _set(None, "lambda", True), "lambda"),
    ("string-for-bool", _set("execution", "compile", "yes"), "execution.compile"),
    ("null-for-float", _set("bridge", "sigma_max", None), "bridge.sigma_max"),
    ("scalar-for-list", _set("model", "channel_mult", 2), "model.channel_mult"),
    ("string-in-list", _set("model", "channel_mult", [1, "2", 2]), "model.channel_mult[1]"),
    ("negative-lambda", _set(None, "lambda", -0.1), "lambda"),
    ("nan-lambda", _set(None, "lambda", float("nan")), "lambda"),
    ("nan-lr", _set("train", "lr", float("nan")), "train.lr"),
    ("clamp-min-above-max", _set("potential", "clamp", [10.0, 0.1]), "potential.clamp"),
    ("clamp-min-zero", _set("potential", "clamp", [0.0, 10.0]), "potential.clamp"),
    ("clamp-three-values", _set("potential", "clamp", [0.1, 1.0, 10.0]), "potential.clamp"),
    ("potential-two-widths", _set("potential", "widths", [8, 8]), "potential.widths"),
    ("nfe-zero", _set("sample", "nfe", 0), "sample.nfe"),
    ("batch-size-zero", _set("train", "batch_size", 0), "train.batch_size"),
    ("steps-zero", _set("train", "steps", 0), "train.steps"),
    ("ema-decay-one", _set("train", "ema_decay", 1.0), "train.ema_decay"),
    ("beta-one", _set("train", "betas", [0.9, 1.0]), "train.betas[1]"),
    ("resolution-not-divisible", _set("data", "resolution", 9), "data.resolution"),
    ("resolution-too-small", _set("data", "resolution", 2), "data.resolution"),
    ("attention-at-no-unet-resolution", _set("model", "attn_resolutions", [2]), "model.attn_resolutions[0]"),
    ("snapshots-after-the-last-step", _set("train", "snapshot_every", 10**9), "train.snapshot_every"),
    ("channels-two", _set("data", "channels", 2), "data.channels"),
    ("unknown-schedule", _set("bridge", "schedule", "linear"), "bridge.schedule"),
    ("unknown-source", _set("data", "source", "s3"), "data.source"),
    ("amp-fp8", _set("train", "amp", "fp8"), "train.amp"),
    ("device-tpu", _set("execution", "device", "tpu"), "execution.device"),
    ("device-tpu-index", _set("execution", "device", "tpu:0"), "execution.device"),
    ("device-bad-index", _set("execution", "device", "cuda:abc"), "execution.device"),
    ("cpu-with-index", _set("execution", "device", "cpu:1"), "execution.device"),
    ("seeds-empty", _set(None, "seeds", []), "seeds"),
    ("seeds-repeated", _set(None, "seeds", [0, 0]), "seeds"),
    ("seeds-negative", _set(None, "seeds", [1, -2]), "seeds[1]"),
    ("seeds-scalar", _set(None, "seeds", 3), "seeds"),
    ("unknown-control", _set(None, "controls", ["agm2"]), "controls"),
    ("control-twice", _set(None, "controls", ["time_only", "time_only"]), "controls"),
    ("holdout-one", _set("data", "holdout_fraction", 1.0), "data.holdout_fraction"),
    ("holdout-zero", _set("data", "holdout_fraction", 0.0), "data.holdout_fraction"),
    ("folder-without-path", _set("data", "source", "folder"), "data.path"),
    ("hf-without-name", _set("data", "source", "hf"), "data.name"),
    ("dropout-one", _set("model", "dropout", 1.0), "model.dropout"),
    ("empty-channel-mult", _set("model", "channel_mult", []), "model.channel_mult"),
    ("eval-k-zero", _set("eval", "k", 0), "eval.k"),
    ("checkpoint-every-zero", _set("execution", "checkpoint_every", 0), "execution.checkpoint_every"),
    ("log-every-zero", _set("execution", "log_every", 0), "execution.log_every"),
    ("nproc-zero", _set("execution", "nproc", 0), "execution.nproc"),
    ("nproc-not-dividing-the-batch", _set("execution", "nproc", 3), "execution.nproc"),
    ("an-execution-key-in-train", _set("train", "nproc", 2), "train.nproc"),
    ("missing-execution", _drop(None, "execution"), "execution"),
]


@pytest.mark.parametrize("mutate,key", [(m, k) for _, m, k in BAD], ids=[i for i, _, _ in BAD])
def test_malformed_params_name_the_key_on_one_line(tmp_path, default_raw, mutate, key):
    raw = copy.deepcopy(default_raw)
    mutate(raw)
    with pytest.raises(ParamsError) as info:
        load_params(_write(tmp_path, raw))
    message = str(info.value)
    assert key in message
    assert "\n" not in message and message.strip() == message


def test_the_result_keys_are_every_key_but_execution(default_raw):
    from agm.config.params import RESULT_KEYS

    assert set(RESULT_KEYS) == set(default_raw) - {"execution"}


def test_bad_values_in_unrequested_sections_are_not_read(tmp_path, default_raw):
    raw = copy.deepcopy(default_raw)
    raw["sample"]["nfe"] = 0
    assert load_params(_write(tmp_path, raw), ["seed", "data"]).data is not None


@pytest.mark.parametrize("text,needle", [
    ("train: [1, 2\n", "not valid YAML"),
    ("- 1\n- 2\n", "mapping"),
    ("", "mapping"),
    ("just a string\n", "mapping"),
])
def test_unreadable_params_files_name_the_file(tmp_path, text, needle):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=needle) as info:
        load_params(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_params_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError, match="does not exist") as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_model_kwargs_build_the_unet():
    from agm.math.nets import DriftUNet

    p = load_params(PARAMS, ["data", "model"])
    assert isinstance(p.model, ModelParams)
    f = DriftUNet(**p.model.kwargs(p.data.channels, p.data.resolution))
    assert f.resolution == p.data.resolution


def test_resolve_device():
    assert str(resolve_device("cpu")) == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")


# `python -m stages.prepare` with a bad params file: exit 2, one `error:` line, nothing written.
PREPARE_CASES = [
    ("unknown-top-level-key", _set(None, "lamda", 0.1), "lamda"),
    ("channels-two", _set("data", "channels", 2), "data.channels"),
    ("holdout-one", _set("data", "holdout_fraction", 1.0), "data.holdout_fraction"),
]


def test_prepare_stage_rejects_bad_params(tmp_path, default_raw):
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    runs = []
    for name, mutate, key in PREPARE_CASES:
        case = tmp_path / name
        case.mkdir()
        raw = copy.deepcopy(default_raw)
        mutate(raw)
        params = _write(case, raw)
        outs = (case / "train.npz", case / "heldout.npz")
        cmd = [sys.executable, "-m", "stages.prepare", "--params", str(params),
               "--train", str(outs[0]), "--heldout", str(outs[1])]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        runs.append((name, key, outs, proc))
    for name, key, outs, proc in runs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
        assert key in lines[0], name
        assert not any(p.exists() for p in outs), name
        assert sorted(p.name for p in outs[0].parent.iterdir()) == ["params.yaml"], name


# eval.inception_weights: `auto` or the path of clean-fid's weights file, checked only for the inception space.
@pytest.mark.parametrize("weights", ["auto", "/models/inception-2015-12-05.pt", "inception-2015-12-05.pt"])
def test_inception_space_accepts_auto_or_a_path_to_the_weights(tmp_path, default_raw, weights):
    raw = copy.deepcopy(default_raw)
    raw["eval"].update(feature_space="inception", inception_weights=weights)
    assert load_params(_write(tmp_path, raw), ["eval"]).eval.inception_weights == weights


@pytest.mark.parametrize("weights", ["", " ", "AUTO", "weights/", "weights/inception.pt"])
def test_inception_space_rejects_other_weights_values_on_one_line(tmp_path, default_raw, weights):
    raw = copy.deepcopy(default_raw)
    raw["eval"].update(feature_space="inception", inception_weights=weights)
    with pytest.raises(ParamsError) as info:
        load_params(_write(tmp_path, raw), ["eval"])
    message = str(info.value)
    assert "eval.inception_weights" in message and "auto" in message and "inception-2015-12-05.pt" in message
    assert repr(weights) in message and "\n" not in message


def test_digits_space_ignores_inception_weights(tmp_path, default_raw):
    raw = copy.deepcopy(default_raw)
    raw["eval"].update(feature_space="digits", inception_weights="")
    assert load_params(_write(tmp_path, raw), ["eval"]).eval.inception_weights == ""


def test_paper_profile_fetches_the_inception_weights_with_cleanfid():
    from agm.math.metrics import INCEPTION_WEIGHTS_FILENAME

    assert load_params(REPO / "profiles" / "paper.yaml", ["eval"]).eval.inception_weights == "auto"
    assert INCEPTION_WEIGHTS_FILENAME == "inception-2015-12-05.pt"  # the name EvalParams.check requires
