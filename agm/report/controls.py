"""Verdicts on the control models (no_detach, time_only, action_matching), from logged curves and metrics.

- :func:`collapse_step`: when (if ever) the no-stop-gradient ablation collapses, by a stated rule.
- :func:`paired_difference`: a control minus AGM over the same seeds, with a 95 % Student-t interval,
  and the sentence that says whether the two are distinguishable (no verdict, with the reason, when a
  seed is missing or not finite).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agm.report.analysis import ewm_smooth
from agm.report.stats import MeanCI, mean_ci

DRIFT_RATIO = 2.0
"""Collapse when the smoothed drift loss exceeds this multiple of the stop-gradient run's."""


@dataclass(frozen=True)
class Collapse:
    """The first logged step that meets the collapse rule (None: never), and which part of it did."""

    step: int | None
    reason: str
    last_step: int


COLLAPSE_SPAN_DIVISOR = 20
"""The collapse rule smooths each loss curve with an EWM of span ~5 % of the curve (len // 20, at least 2)."""


def collapse_smooth(values: pd.Series) -> pd.Series:
    """A loss curve smoothed as the collapse rule smooths it: an EWM of span 1/COLLAPSE_SPAN_DIVISOR of its length."""
    return ewm_smooth(values, span=max(2, len(values) // COLLAPSE_SPAN_DIVISOR))


def collapse_step(no_detach: pd.DataFrame, agm: pd.DataFrame, margin: float) -> Collapse:
    """The no-stop-gradient run's collapse (paper §4.4), by a rule stated in :attr:`Collapse.reason`.

    A logged step counts as collapsed when any of these holds:
    1. a loss is not finite;
    2. V no longer separates bridge samples from noise: its smoothed loss L_V reaches 2m, the value of
       the uninformative V ≡ 0 (Eq. 10);
    3. the smoothed drift loss exceeds :data:`DRIFT_RATIO` times the stop-gradient run's at that step.

    Args:
        no_detach, agm: dvclive curves (step, drift_loss, potential_loss) of the two runs.
        margin: the hinge margin m of L_V.
    """
    nd = no_detach.sort_values("step").reset_index(drop=True)
    ref = agm.sort_values("step").set_index("step")["drift_loss"]
    last = int(nd["step"].iloc[-1])
    finite = np.isfinite(nd["drift_loss"]) & np.isfinite(nd["potential_loss"])
    if not finite.all():
        return Collapse(int(nd["step"][~finite].iloc[0]), "a non-finite loss", last)
    lv = collapse_smooth(nd["potential_loss"])
    hit = lv >= 2 * margin
    if hit.any():
        return Collapse(int(nd["step"][hit].iloc[0]), f"L_V reached 2m = {2 * margin:g} (V ≡ 0 level)", last)
    shared = nd["step"].isin(ref.index)
    ratio = (collapse_smooth(nd["drift_loss"][shared]).to_numpy()
             / collapse_smooth(ref.loc[nd["step"][shared]]).to_numpy())
    over = ratio > DRIFT_RATIO
    if over.any():
        return Collapse(int(nd["step"][shared].iloc[int(np.argmax(over))]),
                        f"drift loss above {DRIFT_RATIO:g}× the stop-gradient run's", last)
    return Collapse(None, "", last)


def describe_collapse(collapse: Collapse) -> str:
    """The report's sentence on one no-stop-gradient run's collapse (or its absence)."""
    if collapse.step is None:
        return (f"No collapse within {collapse.last_step} steps: every loss stayed finite, L_V stayed below 2m "
                f"and the drift loss within {DRIFT_RATIO:g}× the stop-gradient run's.")
    return f"Collapsed at step {collapse.step} of {collapse.last_step}: {collapse.reason}."


@dataclass(frozen=True)
class PairedDifference:
    """mean over seeds of (control − AGM) with its 95 % interval, for one metric."""

    diff: MeanCI

    @property
    def distinguishable(self) -> bool | None:
        """Whether the interval excludes 0; None with one seed (no interval) or no mean (``diff.reason``)."""
        if self.diff.reason or math.isnan(self.diff.half_width):
            return None
        return abs(self.diff.mean) > self.diff.half_width


def paired_difference(control: Sequence[float | None], agm: Sequence[float | None],
                      seeds: Sequence[int] | None = None) -> PairedDifference:
    """Per-seed differences control_s − agm_s (the two lists in the same seed order, named by ``seeds``).

    A seed missing from either model (None) or not finite in either leaves the difference n/a.
    """
    if len(control) != len(agm):
        raise ValueError(f"need one value per seed for both models, got {len(control)} and {len(agm)}")
    diffs = [None if c is None or a is None else c - a for c, a in zip(control, agm, strict=True)]
    return PairedDifference(mean_ci(diffs, seeds=seeds))


def describe_time_only(difference: PairedDifference, metric: str, digits: int = 2) -> str:
    """The report's sentence on the time-only control against AGM, for ``metric`` (lower is better)."""
    text = f"time-only − AGM {metric}: {difference.diff.format(digits)} over {difference.diff.n} seed(s). "
    if difference.diff.reason:
        return text + "No verdict."
    if difference.distinguishable is None:
        return text + "One seed gives no interval, so no verdict; run more seeds (params `seeds`)."
    if not difference.distinguishable:
        return text + ("The 95% interval contains 0: the time-only weighting matches AGM, so on this evidence "
                       "V adds nothing beyond a time-dependent loss weight.")
    if difference.diff.mean > 0:
        return text + "The 95% interval excludes 0: AGM is better, so V adds something beyond a time weight."
    return text + ("The 95% interval excludes 0: the time-only control is better, so V's weighting is worse "
                   "than its own time profile.")


def describe_paired(reproduced: dict[str, Sequence[float | None]], reference: str, metric: str, digits: int = 2,
                    seeds: Sequence[int] | None = None) -> str:
    """One sentence of per-seed paired differences (model − ``reference``) of ``metric``, for every other model.

    Runs of one seed share f's initialisation and every random draw of training (agm/training/loop.py), so the
    paired difference removes the seed-to-seed spread that the unpaired intervals of the table carry.

    Args:
        reproduced: model -> per-seed values of ``metric``, every list in the same seed order (None: missing).
        seeds: the seeds of that order, to name them where a difference is n/a.
    """
    parts = []
    for model, values in reproduced.items():
        if model == reference:
            continue
        difference = paired_difference(values, reproduced[reference], seeds)
        verdict = {None: "", True: " (interval excludes 0)",
                   False: " (interval contains 0)"}[difference.distinguishable]
        parts.append(f"{model} − {reference} = {difference.diff.format(digits)}{verdict}")
    n = len(reproduced[reference])
    return f"Paired by seed ({n} seed{'s' if n > 1 else ''}), {metric}: " + "; ".join(parts) + "."
