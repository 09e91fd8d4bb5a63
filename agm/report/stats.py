"""The report's statistics: means with Student-t intervals over seeds, and the power of a paired comparison.

A mean over seeds (:func:`mean_ci`) has the half-width t_{(1+c)/2, n−1} · s / √n, or none for one seed; a seed
whose value is missing or not finite leaves it n/a with the reason (:func:`unusable`).

Power of a paired comparison over seeds: the two-sided paired t-test at level α.

With n paired differences of standard deviation s, the test rejects "no difference" when |t| > t_{1−α/2, n−1}.
Against a true mean difference δ the statistic follows a noncentral t with n − 1 degrees of freedom and
noncentrality δ√n / s, so

    power(δ; n, s) = P(|T| > t_{1−α/2, n−1}),    T ~ t(n − 1, nc = δ√n / s).

The minimum detectable effect is the |δ| at which power(δ) = 1 − β (80% by default); the seeds needed for an
effect δ are the least n with power ≥ 1 − β, taking s as observed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


def na(reason: str) -> str:
    """The text of a number that cannot be computed: "n/a (<reason>)"."""
    return f"n/a ({reason})"


def unusable(values: Sequence[float | None], seeds: Sequence[int] | None = None) -> str:
    """Why per-seed ``values`` have no mean, "" when they have one.

    A value is None when its seed's output is missing ("seeds 1, 2 missing") and unusable when it is not
    finite ("seed 0 is NaN"). Without ``seeds`` the values are not named ("1 of 3 missing", "NaN").
    """
    if seeds is not None and len(seeds) != len(values):
        raise ValueError(f"{len(values)} values for {len(seeds)} seeds")
    groups = {"missing": [i for i, v in enumerate(values) if v is None],
              "NaN": [i for i, v in enumerate(values) if v is not None and math.isnan(v)],
              "inf": [i for i, v in enumerate(values) if v is not None and math.isinf(v)]}
    parts = []
    for kind, where in groups.items():
        if not where:
            continue
        if seeds is None:
            parts.append(f"{len(where)} of {len(values)} missing" if kind == "missing" else kind)
            continue
        names = f"seed{'s' if len(where) > 1 else ''} {', '.join(str(seeds[i]) for i in where)}"
        parts.append(f"{names} missing" if kind == "missing" else f"{names} {'are' if len(where) > 1 else 'is'} {kind}")
    return ", ".join(parts)


@dataclass(frozen=True)
class MeanCI:
    """Mean of n values with the half-width of its confidence interval (nan when n == 1).

    When the values have no mean (:func:`unusable`), ``mean`` and ``half_width`` are nan and ``reason``
    says why; it is "" otherwise.
    """

    mean: float
    half_width: float
    n: int
    reason: str = ""

    def format(self, digits: int) -> str:
        """The text "mean ± half_width" when there is an interval, else the plain mean; "n/a (reason)"
        when there is no mean."""
        if self.reason:
            return na(self.reason)
        if math.isnan(self.half_width):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


def mean_ci(values: Sequence[float | None], confidence: float = 0.95, seeds: Sequence[int] | None = None) -> MeanCI:
    """Mean and Student-t confidence interval half-width, t_{(1+c)/2, n-1} · s / √n.

    Args:
        values: n >= 1 observations (e.g. one metric over seeds); s is their sample std (ddof=1). A value
            that is None (its seed's output is missing) or not finite leaves the mean n/a
            (:attr:`MeanCI.reason`).
        confidence: two-sided coverage c of the interval.
        seeds: the seed of each value, to name them in the reason.
    """
    if len(values) == 0 or any(np.ndim(v) for v in values):
        raise ValueError(f"need a non-empty 1-D sequence, got {len(values)} values of shape {np.shape(values[:1])}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reason := unusable(values, seeds):
        return MeanCI(mean=math.nan, half_width=math.nan, n=len(values), reason=reason)
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 1:
        return MeanCI(mean=float(x[0]), half_width=math.nan, n=1)
    t = stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)
    return MeanCI(mean=float(x.mean()), half_width=float(t * x.std(ddof=1) / math.sqrt(n)), n=n)


@dataclass(frozen=True)
class PairedPower:
    """What ``n`` paired differences could detect: their SD, the minimum detectable effect at 80% power and
    α = 0.05 for that SD and count, and the seeds that would detect the paper's relative change (NaN where
    undefined: fewer than 2 differences, SD 0, no paper effect or a zero baseline)."""

    n: int
    sd: float
    mde: float
    seeds_for_paper: float


def power_of_pairs(diffs: Sequence[float], baseline_mean: float, paper_pct: float | None) -> PairedPower:
    """:class:`PairedPower` of the paired differences ``diffs``; ``paper_pct`` percent of ``baseline_mean`` is
    the paper's effect."""
    n = len(diffs)
    sd = statistics.stdev(diffs) if n >= 2 else math.nan
    if not (n >= 2 and math.isfinite(sd) and sd > 0):
        return PairedPower(n, sd, math.nan, math.nan)
    seeds = math.nan
    if paper_pct is not None and math.isfinite(baseline_mean) and baseline_mean != 0:
        seeds = float(seeds_needed(paper_pct / 100.0 * baseline_mean, sd))
    return PairedPower(n, sd, minimum_detectable_effect(sd, n), seeds)


def paired_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Probability that the two-sided paired t-test at level ``alpha`` over ``n`` seeds detects a true mean
    difference ``effect`` when the differences have standard deviation ``sd``."""
    if n < 2 or sd <= 0:
        raise ValueError(f"need n >= 2 seeds and sd > 0, got n={n}, sd={sd}")
    crit = stats.t.ppf(1 - alpha / 2, n - 1)
    nc = abs(effect) * math.sqrt(n) / sd
    # the lower tail P(T < −crit) as the upper tail of −T ~ t(n − 1, −nc): scipy's nct.cdf returns NaN for some
    # large nc where this does not
    return float(stats.nct.sf(crit, n - 1, nc) + stats.nct.sf(crit, n - 1, -nc))


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest |mean difference| detected with probability ``power`` over ``n`` seeds (paired SD ``sd``)."""
    if not 0 < alpha < power < 1:
        raise ValueError(f"need 0 < alpha < power < 1, got alpha={alpha}, power={power}")
    # at noncentrality t_crit + 10 the power is 1 to ~1e-20: the root lies below that effect
    hi = (stats.t.ppf(1 - alpha / 2, n - 1) + 10.0) * sd / math.sqrt(n)
    return float(optimize.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * sd))


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, limit: int = 100_000) -> int:
    """The least number of paired seeds n >= 2 whose test detects ``effect`` with probability ``power``."""
    if effect == 0:
        raise ValueError("an effect of 0 is never detected")
    lo, hi = 2, 2
    while paired_power(effect, sd, hi, alpha) < power:  # doubling, then bisection: power grows with n
        lo, hi = hi, hi * 2
        if hi > limit:
            raise ValueError(f"more than {limit} seeds needed for effect {effect} at sd {sd}")
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_power(effect, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def describe_power(baseline: Sequence[float | None], agm: Sequence[float | None], metric: str,
                   paper_relative: float | None = None, digits: int = 3) -> str:
    """One sentence on what the paired comparison AGM − baseline of ``metric`` could detect.

    The observed paired SD over the seeds, the minimum detectable effect at 80% power and α = 0.05 for that
    many seeds (also relative to the baseline's mean), and, given the paper's relative change
    ``paper_relative`` (percent), the seeds that would detect it. "n/a (why)" where a number cannot be had.
    """
    diffs = [None if b is None or a is None else a - b for b, a in zip(baseline, agm, strict=True)]
    n = len(diffs)
    if any(d is None or not math.isfinite(d) for d in diffs):
        return f"{metric}: n/a (a seed is missing or not finite)"
    if n < 2:
        return f"{metric}: n/a (one seed: no paired SD; run more seeds)"
    base = statistics.fmean(baseline)
    pp = power_of_pairs(diffs, base, paper_relative)
    if pp.sd == 0:
        return f"{metric}: the {n} paired differences are identical (SD 0): any change would be detected"
    text = (f"{metric}: paired SD {pp.sd:.{digits}g} over {n} seeds; minimum detectable effect (80% power, "
            f"α = 0.05, {n} seeds) ±{pp.mde:.{digits}g}")
    if base:
        text += f" ({100 * pp.mde / abs(base):.1f}% of the baseline's mean)"
    if paper_relative is not None and base:
        text += (f"; the paper's {paper_relative:+.1f}% ({paper_relative / 100 * base:+.{digits}g}) would need "
                 f"{int(pp.seeds_for_paper)} seeds")
    return text
