"""The sections, one registry: each name's function, its wall-clock cap in seconds on a GPU and its cap in a dry run,
in the order they run. A section takes (args, tmp) and returns a JSON-able dict."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .attention import section_attention
from .converged_study import section_converged_study
from .correctness import section_correctness
from .env import section_env
from .extra_seeds import section_extra_seeds
from .no_detach import section_no_detach
from .paper_stages import section_stages
from .sample_precision import section_sample_precision
from .sampling import section_sample
from .train import section_stacked_seeds, section_train, section_train_compiled


class Section(NamedTuple):
    run: Callable[[argparse.Namespace, Path], dict[str, Any]]
    cap_gpu: float
    """Wall-clock cap in seconds on a GPU."""
    cap_dry: float
    """Wall-clock cap in seconds in a dry run."""


# name -> (function, wall-clock cap in seconds on a GPU, cap in a dry run): the order they run in
REGISTRY: dict[str, Section] = {
    "env": Section(section_env, 60, 60),
    "stacked_seeds": Section(section_stacked_seeds, 90, 150),
    "converged_study": Section(section_converged_study, 330, 360),
    "sample_precision": Section(section_sample_precision, 60, 120),
    "train": Section(section_train, 100, 150),
    "train_compiled": Section(section_train_compiled, 150, 400),
    "sample": Section(section_sample, 150, 120),
    "attention": Section(section_attention, 45, 60),
    "correctness": Section(section_correctness, 150, 120),
    "stages": Section(section_stages, 150, 300),
    "extra_seeds": Section(section_extra_seeds, 600, 240),
    "no_detach": Section(section_no_detach, 540, 240),
}

SECTIONS: tuple[tuple[str, float, float], ...] = tuple((name, s.cap_gpu, s.cap_dry) for name, s in REGISTRY.items())
"""(name, cap on a GPU, cap in a dry run), in the order they run: what the driver walks."""

SECTION_FUNCS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    name: s.run for name, s in REGISTRY.items()}
"""Each section's function, by name (``--section``)."""
