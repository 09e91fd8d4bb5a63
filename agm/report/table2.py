"""The paper's Table 2 (hyperparameters) beside this run's values, and where each value comes from.

Each row names a params key and one of three origins, read off the paper's text:

    paper                the value is in the paper's text, and the run uses it
    lost in the text     the paper states the setting but its text lost the number or equation (the
                         extraction dropped it); profiles/paper.yaml infers or chooses one, for the stated reason
    not in the paper     a setting the paper does not give at all; profiles/paper.yaml chooses one

and, where the run departs from the paper profile's value for its own profile (the default profile scales the
paper's setting down for a 2-core CPU), "; changed for the <profile> profile".

Below the paper's Table 2 rows come the settings the paper describes elsewhere or not at all (bridge,
optimiser, architecture).
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
    paper: Any = None  # the paper's value where its text gives it
    origin: str = "paper"  # paper | lost | absent (module docstring)
    reason: str = ""  # for lost and absent: where the paper profile's value comes from
    in_table2: bool = True  # a row of the paper's Table 2, or a setting described elsewhere (or nowhere)


_LOST_IN_TABLE = "Table 2's cell is empty in the text; chosen (docs/spec.md)"
ROWS: tuple[Hyperparameter, ...] = (
    Hyperparameter("Training steps", "train.steps", 500_000),
    Hyperparameter("Batch size", "train.batch_size", 128),
    Hyperparameter("Image resolution", "data.resolution", origin="lost",
                   reason="Table 2's cell and §5's number are empty in the text; 64 inferred from the 50M U-Net "
                          "of three scales (§4.6)"),
    Hyperparameter("Base channels", "model.base_channels", 128),
    Hyperparameter("Time embedding dim", "model.time_embed_dim", 256),
    Hyperparameter("Learning rate (f)", "train.lr", origin="lost", reason=_LOST_IN_TABLE),
    Hyperparameter("Learning rate (V)", "potential.lr", origin="lost", reason=_LOST_IN_TABLE),
    Hyperparameter("EMA decay", "train.ema_decay", 0.9999),
    Hyperparameter("Inference noise g", "sample.g", 0.01),
    Hyperparameter("Bridge margin m", "potential.margin", 1.0),
    Hyperparameter("L2 regulariser μ", "potential.mu", origin="lost", reason=_LOST_IN_TABLE),
    Hyperparameter("Importance weight λ", "lambda", 0.1),
    Hyperparameter("Weight clamp range", "potential.clamp", origin="lost", reason=_LOST_IN_TABLE),
    Hyperparameter("NFE at evaluation", "sample.nfe", 500),
    Hyperparameter("FID sample count", "sample.num_samples", 10_000),
    Hyperparameter("Bridge noise σ_max", "bridge.sigma_max", origin="lost", in_table2=False,
                   reason="§4.1 gives a value \"for the publication run\" that the text lost; chosen"),
    Hyperparameter("Bridge schedule", "bridge.schedule", origin="lost", in_table2=False,
                   reason="§4.1 names cosine interpolation and a sinusoidal width; Eqs. 7-8 are lost: "
                          "α = cos(πt/2), β = sin(πt/2) chosen"),
    Hyperparameter("U-Net channel multipliers", "model.channel_mult", origin="lost", in_table2=False,
                   reason="§4.6 gives three scales whose sizes the text lost; chosen to give ≈ 50M parameters"),
    Hyperparameter("U-Net attention resolutions", "model.attn_resolutions", origin="lost", in_table2=False,
                   reason="§4.6: the two innermost scales and the bottleneck, sizes lost; 32 and 16 at 64×64"),
    Hyperparameter("Mixed precision", "train.amp", origin="lost", in_table2=False,
                   reason="§5 states torch.amp.autocast, not its dtype; bf16 chosen (a GPU's autocast)"),
    Hyperparameter("AdamW betas", "train.betas", origin="absent", in_table2=False, reason="chosen"),
    Hyperparameter("Gradient clipping", "train.grad_clip", origin="absent", in_table2=False, reason="chosen"),
    Hyperparameter("Learning-rate warm-up steps", "train.warmup_steps", origin="absent", in_table2=False,
                   reason="chosen"),
    Hyperparameter("Potential widths", "potential.widths", origin="absent", in_table2=False,
                   reason="§4.6 gives V's layers and size (≈ 0.7M), not its widths; chosen to match it"),
)
ORIGINS = {"paper": "paper", "lost": "lost in the text", "absent": "not in the paper"}


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
    """Where the run's value comes from (module docstring): its origin, the reason for a lost or absent value, and,
    where the run departs from the paper's (or the paper profile's) value, "; changed for the <profile> profile"."""
    origin = ORIGINS[row.origin] + (f" ({row.reason})" if row.reason else "")
    reference = row.paper if row.origin == "paper" else paper_profile
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
                     "Paper": show(row.paper) if row.origin == "paper" else ORIGINS[row.origin],
                     "Paper profile": show(chosen), f"This run ({profile})": show(value),
                     "Status": status(row, value, chosen, profile)})
    return pd.DataFrame(rows)


def table2_section(run: Mapping[str, Any], paper_profile: Mapping[str, Any], profile: str) -> list[Section]:
    table = table2(run, paper_profile, profile)
    text = ("The paper's Table 2 and the settings a run needs that the table does not list: the paper's value "
            "where its text gives it (\"lost in the text\" where the paper states the setting but its text lost "
            "the number, \"not in the paper\" where it gives none), the paper profile's (profiles/paper.yaml, with "
            "this project's choices, docs/spec.md), this run's, and where this run's value comes from.")
    return [Section("Table 2 — hyperparameters", text, table_md=tables.to_markdown(table),
                    table_html=tables.to_html(table))]
