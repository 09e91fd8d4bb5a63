"""The paper's Table 2 (hyperparameters) beside this run's values, and where each value comes from.

Each row names a params key. Its status for this run:

    paper                            the run uses the paper's value
    chosen (paper's value lost)      the paper's text lost the value; the run uses profiles/paper.yaml's choice
    chosen (not in the paper)        a setting the paper does not give; the run uses profiles/paper.yaml's choice
    <any of these>; changed for the  the run departs from that value for its profile (the default profile
      <profile> profile              scales the paper's setting down for a 2-core CPU)

Below the paper's rows come the settings the paper does not list but a run needs (bridge, optimiser).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from agm.report import tables
from agm.report.page import Section


@dataclass(frozen=True)
class Hyperparameter:
    label: str
    key: str  # dotted params key
    paper: Any = None  # the paper's value; None where its text lost the value (or never gave one)
    in_table2: bool = True  # a row of the paper's Table 2, or a setting the paper does not list


ROWS: tuple[Hyperparameter, ...] = (
    Hyperparameter("Training steps", "train.steps", 500_000),
    Hyperparameter("Batch size", "train.batch_size", 128),
    Hyperparameter("Image resolution", "data.resolution", 64),
    Hyperparameter("Base channels", "model.base_channels", 128),
    Hyperparameter("Time embedding dim", "model.time_embed_dim", 256),
    Hyperparameter("Learning rate (f)", "train.lr"),
    Hyperparameter("Learning rate (V)", "potential.lr"),
    Hyperparameter("EMA decay", "train.ema_decay", 0.9999),
    Hyperparameter("Inference noise g", "sample.g", 0.01),
    Hyperparameter("Bridge margin m", "potential.margin", 1.0),
    Hyperparameter("L2 regulariser μ", "potential.mu"),
    Hyperparameter("Importance weight λ", "lambda", 0.1),
    Hyperparameter("Weight clamp range", "potential.clamp"),
    Hyperparameter("NFE at evaluation", "sample.nfe", 500),
    Hyperparameter("FID sample count", "sample.num_samples", 10_000),
    Hyperparameter("Bridge noise σ_max", "bridge.sigma_max", in_table2=False),
    Hyperparameter("Bridge schedule", "bridge.schedule", in_table2=False),
    Hyperparameter("AdamW betas", "train.betas", in_table2=False),
    Hyperparameter("Gradient clipping", "train.grad_clip", in_table2=False),
    Hyperparameter("Learning-rate warm-up steps", "train.warmup_steps", in_table2=False),
    Hyperparameter("Mixed precision (paper: torch.amp.autocast)", "train.amp", in_table2=False),
    Hyperparameter("U-Net channel multipliers", "model.channel_mult", in_table2=False),
    Hyperparameter("Potential widths", "potential.widths", in_table2=False),
)


def lookup(params: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` of a params mapping (``train.lr`` → params["train"]["lr"])."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"params have no key {key!r}")
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def show(value: Any) -> str:
    if value is None:
        return "lost"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def status(row: Hyperparameter, run: Any, paper_profile: Any, profile: str) -> str:
    """Where the run's value comes from (module docstring): "paper", "chosen (...)", and, where the run departs
    from that value, "; changed for the <profile> profile"."""
    if row.paper is not None:
        origin = "paper"
    else:
        origin = "chosen (paper's value lost)" if row.in_table2 else "chosen (not in the paper)"
    reference = row.paper if row.paper is not None else paper_profile
    return origin if _same(run, reference) else f"{origin}; changed for the {profile} profile"


def table2(run: Mapping[str, Any], paper_profile: Mapping[str, Any], profile: str) -> pd.DataFrame:
    """One row per hyperparameter: the paper's value, profiles/paper.yaml's, this run's, and its status.

    Args:
        run: this run's params mapping (agm.report.build.params_mapping).
        paper_profile: profiles/paper.yaml's params mapping, the paper's setting with this project's choices
            where the paper lost a value.
        profile: this run's profile name, for the column header.
    """
    rows = []
    for row in ROWS:
        value, chosen = lookup(run, row.key), lookup(paper_profile, row.key)
        rows.append({"Hyperparameter": row.label, "params key": row.key,
                     "Paper": show(row.paper) if row.in_table2 else "not given",
                     "Paper profile": show(chosen), f"This run ({profile})": show(value),
                     "Status": status(row, value, chosen, profile)})
    return pd.DataFrame(rows)


def table2_section(run: Mapping[str, Any], paper_profile: Mapping[str, Any], profile: str) -> list[Section]:
    table = table2(run, paper_profile, profile)
    text = ("The paper's Table 2 and the settings a run needs that the paper does not list: the paper's value "
            "(\"lost\" where its text lost it), the paper profile's (profiles/paper.yaml, with this project's "
            "choices for the lost ones, docs/spec.md), this run's, and where this run's value comes from.")
    return [Section("Table 2 — hyperparameters", text, table_md=tables.to_markdown(table),
                    table_html=tables.to_html(table))]
