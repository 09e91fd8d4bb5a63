"""Every result number typed into a results page (docs/results/*/README.md) is checked against the file it came from.

A claim is a piece of a page's text with ``{}`` where a number stands, and the value(s) each number must agree with,
recomputed from the CSV or JSON beside the page. A stated number agrees with a value when the value rounds to it at
the decimals the page writes (half up or half even, so an exact tie passes either way). A tuple of values must all
round to the one number (e.g. "0.93 at 4k" for both arms); :class:`Near` is for "about"/"~" numbers, :class:`AtMost`
for "at most X" (X lies between the largest value rounded and rounded up), :class:`Under` for a bound the values stay
below. Words that follow from the data ("none", "outside", bold for an interval that excludes 0) are written into the
claim's text from the data, so a page that says otherwise no longer contains the claim.

Numbers that are settings (steps, samples, seeds chosen, commits), quoted from the paper, or from no committed file
are not claims. Every "±" number on a page must sit inside a claim. "The study at the plateau (in progress)" of
docs/results/converged is rewritten as the study runs and is left out.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from agm.report.stats import mean_ci, minimum_detectable_effect, seeds_needed
from agm.report.tables import PAPER_RELATIVE_PCT

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
GPU = "gpu/2026-12-04-nvidia-h200"
PAPER_DISTANCE_PCT = PAPER_RELATIVE_PCT["distance"]

NUM = r"([−+-]?\d[\d,]*(?:\.\d+)?)"
BOLD = "\x00"  # in a claim's text: "**" or nothing (bold used for emphasis, not for a result)
WORDS = {0: "no", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


@dataclass(frozen=True)
class Near:
    """A number the page gives as "about"/"~": within ``rel`` of it."""

    value: float
    rel: float


@dataclass(frozen=True)
class AtMost:
    """The X of "at most X": between the largest value rounded and rounded up at X's decimals."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class Under:
    """A bound that every value stays below ("no way reaches 3×")."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class Claim:
    page: str
    text: str
    values: tuple

    @property
    def regex(self) -> str:
        parts = [re.escape(re.sub(r"\s+", " ", p)).replace(re.escape(BOLD), r"(?:\*\*)?")
                 for p in self.text.split("{}")]
        return NUM.join(parts)

    def __str__(self) -> str:
        return f"{self.page}: {' '.join(self.text.replace(BOLD, '').split())[:70]}"


def _decimal(stated: str) -> Decimal:
    return Decimal(stated.replace("−", "-").replace(",", "").lstrip("+"))


def _rounded(value: float, like: Decimal, rounding: str) -> Decimal:
    return Decimal(f"{value:.10g}").quantize(Decimal(1).scaleb(like.as_tuple().exponent), rounding=rounding)


def agrees(stated: str, expected) -> bool:
    """Whether the page's ``stated`` number is ``expected`` as the page rounds it."""
    d = _decimal(stated)
    if isinstance(expected, tuple):
        return len(expected) > 0 and all(agrees(stated, e) for e in expected)
    if isinstance(expected, Near):
        return abs(float(d) - expected.value) <= expected.rel * abs(float(d))
    if isinstance(expected, AtMost):
        top = max(expected.values)
        return _rounded(top, d, ROUND_HALF_UP) <= d <= _rounded(top, d, ROUND_CEILING)
    if isinstance(expected, Under):
        return max(expected.values) < float(d)
    value = float(expected)
    return math.isfinite(value) and d in {_rounded(value, d, ROUND_HALF_UP), _rounded(value, d, ROUND_HALF_EVEN)}


@cache
def page_text(page: str) -> str:
    text = (RESULTS / page / "README.md").read_text()
    if page == "converged":  # rewritten while the study runs: not checked here
        start = text.index("## The study at the plateau (in progress)")
        text = text[:start] + text[text.index("\n## ", start + 1):]
    return " ".join(text.split())


def _csv(*parts: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS.joinpath(*parts))


def _json(*parts: str):
    return json.loads(RESULTS.joinpath(*parts).read_text())


def _find(obj, key: str) -> Iterator:
    """Every value of ``key`` anywhere in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from _find(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _find(v, key)


def _bold(excludes_0: bool, cell: str = "{} ± {}") -> str:
    return f"**{cell}**" if excludes_0 else cell


def _paired(a: pd.Series, b: pd.Series):
    """a − b, paired by the index (seed): mean and 95% half-width."""
    ci = mean_ci(list((a - b.loc[a.index]).values))
    return ci.mean, ci.half_width


def _resolved(mean: float, hw: float) -> bool:
    return abs(mean) > hw


def _both_or_neither(*resolved: bool) -> str:
    """How a page says whether a pair of differences is resolved."""
    return "neither resolved" if not any(resolved) else "resolved" if all(resolved) else "one resolved"


def _params_f_and_v() -> tuple[float, float]:
    """The default profile's parameter counts of f and V, in millions (the λ sweep's metrics)."""
    exp = _json("lambda-sweep", "exp_show.json")
    f = {int(v) for v in _find(exp, "params_f")}
    v = {int(v) for v in _find(exp, "params_V")} - {0}
    assert len(f) == 1 and len(v) == 1, (f, v)
    return f.pop() / 1e6, v.pop() / 1e6


# ---------------------------------------------------------------------------------------------------- λ sweep


def _lambda_sweep() -> list[Claim]:
    page = "lambda-sweep"
    s = _csv(page, "summary.csv").set_index(["model", "lambda"])
    runs = _csv(page, "runs.csv").set_index(["model", "lambda", "seed"]).sort_index()
    agm = s.loc["agm"]
    d, ci = "fd_digits_minus_baseline", "fd_digits_minus_baseline_ci"
    low = agm[agm.index <= 10]
    best = agm[d].idxmin()
    higher = agm[agm[d] > 0]
    claims = [
        ("AGM's mean is lower by {}–{} at λ ≤ 10 (best: λ = {}, {} ± {}), inside intervals of ±{}–{}, and "
         "higher at λ = {} ({} ± {}).",
         (-low[d].max(), -low[d].min(), best, agm.loc[best, d], agm.loc[best, ci], low[ci].min(), low[ci].max(),
          *higher.index, *higher[d], *higher[ci])),
    ]
    res_p = agm[agm.precision_minus_baseline_excludes_0]
    claims.append(("resolved at λ = {} ({} ± {}) and λ = {} ({} ± {}).",
                   tuple(x for lam, r in res_p.iterrows()
                         for x in (lam, r.precision_minus_baseline, r.precision_minus_baseline_ci))))
    res_r = agm[agm.recall_minus_baseline_excludes_0]
    n_resolved = int(sum(agm[f"{m}_minus_baseline_excludes_0"].sum() for m in ("fd_digits", "precision", "recall")))
    claims.append((f"**Recall**: {WORDS[len(res_r)]} resolved difference, {{}} ± {{}} at λ = {{}} ({{}} of the {{}} "
                   "AGM − baseline comparisons are resolved at the 95% level, where chance alone gives about {}",
                   (*res_r.recall_minus_baseline, *res_r.recall_minus_baseline_ci, *res_r.index, n_resolved,
                    3 * len(agm), 0.05 * 3 * len(agm))))

    def vs_shuffled(metric: str, lam: float):
        return _paired(runs.loc[("agm", lam)][metric], runs.loc[("shuffled", lam)][metric])

    f01, p01, r01 = (vs_shuffled(m, 0.1) for m in ("fd_digits", "precision", "recall"))
    f30, p30, r30 = (vs_shuffled(m, 30.0) for m in ("fd_digits", "precision", "recall"))
    per_seed = runs.loc[("agm", 0.1)].precision - runs.loc[("shuffled", 0.1)].precision
    sh = s.loc[("shuffled", 0.1)]

    def word(pair) -> str:
        return "resolved" if _resolved(*pair) else "not resolved"

    claims.append((f"at λ = 0.1, AGM − shuffled fd_digits {{}} ± {{}} ({word(f01)}) and precision {{}} ± {{}} "
                   f"({word(p01)}: AGM lower at all three seeds, {{}}, {{}}, {{}}, while shuffled's precision "
                   "equals the baseline's, {} ± {}); at λ = 30, fd_digits {} ± {} and precision {} ± {} "
                   f"({_both_or_neither(_resolved(*f30), _resolved(*p30))}).",
                   (*f01, *p01, *per_seed, sh.precision_minus_baseline, sh.precision_minus_baseline_ci, *f30, *p30)))
    a30, s30, a10 = s.loc[("agm", 30.0)], s.loc[("shuffled", 30.0)], s.loc[("agm", 10.0)]
    fd30 = _both_or_neither(a30.fd_digits_minus_baseline_excludes_0, s30.fd_digits_minus_baseline_excludes_0)
    p30_ = _both_or_neither(a30.precision_minus_baseline_excludes_0, s30.precision_minus_baseline_excludes_0)
    claims += [
        ("at λ = 30 the weights spread {}× (max/min) and the effective sample size falls to {}% of the batch. "
         f"fd_digits rises for AGM ({{}} ± {{}}) and `shuffled` ({{}} ± {{}}), {fd30}, and precision falls for both, "
         f"{p30_} ({{}} ± {{}} and {{}} ± {{}}).",
         (a30.w_ratio, 100 * a30.ess, a30[d], a30[ci], s30[d], s30[ci], a30.precision_minus_baseline,
          a30.precision_minus_baseline_ci, s30.precision_minus_baseline, s30.precision_minus_baseline_ci)),
        ("Up to λ = 10 (ratio {}×, ESS {}) no metric degrades", (a10.w_ratio, a10.ess)),
    ]
    # steps_claim.csv: the seed-averaged curve and each seed's first step at the baseline's final value
    sc = _csv(page, "steps_claim.csv").set_index("lambda")
    total = int(sc.total_steps.iloc[0])
    reached = pd.to_numeric(sc.agm_mean_reaches_at_step, errors="coerce")
    steps = {lam: str(v).split() for lam, v in sc.per_seed_steps.items()}
    early = {lam: [int(x) for x in v if x != "never" and int(x) < total] for lam, v in steps.items()}
    never = {lam: v.count("never") for lam, v in steps.items()}
    one_early = [lam for lam in sc.index if len(early[lam]) == 1 and never[lam] == 0]
    two_early_one_never = [lam for lam in sc.index if len(early[lam]) == 2 and never[lam] == 1]
    at_end = [lam for lam in sc.index if not early[lam] and never[lam] == 0]
    two_never = [lam for lam in sc.index if never[lam] == 2 and not early[lam]]
    claims += [
        ("the best one (λ = {}) included, does AGM's seed-averaged curve reach the baseline's final fd_digits before "
         "the last snapshot (step {} = {}%).", (best, reached.min(), 100 * reached.min() / total)),
        ("Per seed, AGM reaches it at step {} in one of three seeds at λ = {}, {} and {}, in two at λ = {} (the "
         "third never), never before the end at λ = {}, and never at all in two seeds at λ = {}.",
         (tuple(x for v in early.values() for x in v), *one_early, *two_early_one_never, *at_end, *two_never)),
    ]
    a01 = runs.loc[("agm", 0.1)].fd_digits
    claims.append(("(fd_digits {}–{} for one model, AGM at λ = 0.1 in `runs.csv`)", (a01.min(), a01.max())))
    claims.append(("A gain of AGM smaller than about ±{} fd_digits", (Near(low[ci].min(), 0.15),)))
    # the results table and the lines above and below it
    real = list(_find(_json(page, "exp_show.json"), "real_vs_real"))
    base = s.loc[("baseline", 0.1)]
    claims.append(("Real-vs-real reference: fd_digits {}, precision {}. Baseline: fd_digits {} ± {}, "
                   "precision {} ± {}, recall {} ± {}.",
                   (tuple(r["fd_digits"] for r in real), tuple(r["precision"] for r in real), base.fd_digits,
                    base.fd_digits_ci, base.precision, base.precision_ci, base.recall, base.recall_ci)))
    for (model, lam), r in s.drop(index="baseline", level="model").iterrows():
        cells = ["{} ± {}"] + [_bold(r[f"{m}_minus_baseline_excludes_0"]) for m in ("fd_digits",)] + ["{} ± {}"]
        cells += [_bold(r[f"{m}_minus_baseline_excludes_0"]) for m in ("precision", "recall")] + ["{} ± {}"] * 2
        claims.append((f"| {model} | {lam:g} | " + " | ".join(cells) + " |",
                       (r.fd_digits, r.fd_digits_ci, r[d], r[ci], r.precision, r.precision_ci,
                        r.precision_minus_baseline, r.precision_minus_baseline_ci, r.recall_minus_baseline,
                        r.recall_minus_baseline_ci, r.w_ratio, r.w_ratio_ci, r.ess, r.ess_ci)))
    w01 = s.loc[("agm", 0.1)].w_ratio
    claims += [
        ("the largest weight is at most e^λ times the smallest: {} at the paper's λ = 0.1 (measured {}), so there "
         "AGM is the baseline with a ±{}% loss weight.", (math.exp(0.1), w01, 100 * (math.sqrt(w01) - 1))),
        (f"AGM − shuffled, paired (not in summary.csv; from runs.csv): λ = 0.1 fd_digits {_bold(_resolved(*f01))}, "
         f"precision {_bold(_resolved(*p01))}, recall {_bold(_resolved(*r01))}; λ = 30 fd_digits "
         f"{_bold(_resolved(*f30))}, precision {_bold(_resolved(*p30))}, recall {_bold(_resolved(*r30))}.",
         (*f01, *p01, *r01, *f30, *p30, *r30)),
        ("(seed 0: fd {} against {})", (runs.loc[("baseline", 10.0, 0)].fd_digits,
                                        runs.loc[("baseline", 0.1, 0)].fd_digits)),
    ]
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- power study


def _power() -> list[Claim]:
    page = "power"
    s = _csv(page, "summary.csv").set_index(["model", "lambda", "reference", "metric"])
    h200 = _csv(page, "runs.csv")
    cpu = _csv(page, "runs_cpu_lambda1.csv")
    dec = _csv(page, "decomposition.csv").set_index(["metric", "n"])
    fd = dec.loc["fd"]
    gaps = _csv(page, "steps_gaps.csv").set_index("step")
    sc = _csv(page, "steps_claim.csv").iloc[0]
    sweep = _csv("lambda-sweep", "summary.csv").set_index(["model", "lambda"])
    claims = []

    def arm(model: str, lam: float, metric: str = "fd_digits", reference: str = "baseline") -> pd.Series:
        return s.loc[(model, lam, reference, metric)]

    def seeds(runs: pd.DataFrame, model: str) -> tuple[int, int]:
        return runs[runs.model == model].seed.min(), runs[runs.model == model].seed.max()

    for label, machine, r, runs in (("AGM λ = 0.1 (the paper's)", "NVIDIA H200, 54dc2ae", arm("agm", 0.1), h200),
                                    ("AGM λ = 1 (the sweep's best)", "2-core Intel Xeon CPU, ef2625f", arm("agm", 1.0),
                                     cpu)):
        paper = r.paper_relative_pct / 100 * r.reference_mean
        inside = r.paired_diff - r.ci95_half_width <= paper <= r.paired_diff + r.ci95_half_width
        claims.append((f"| {label} | {machine} | {{}} ({{}}–{{}}) | **{{}} ± {{}}** | {{}}% of {{}} | ±{{}} ({{}}%) | "
                       f"{{}}, {'inside' if inside else 'outside'} |",
                       (r.seeds, *seeds(runs, "agm"), r.paired_diff, r.ci95_half_width, r.relative_pct,
                        r.reference_mean, r.minimum_detectable_effect,
                        100 * r.minimum_detectable_effect / r.reference_mean, paper)))
    sh = arm("shuffled", 1.0)
    claims.append(("| shuffled λ = 1 (control) | same | {} | {} ± {} | {}% | ±{} | — |",
                   (sh.seeds, sh.paired_diff, sh.ci95_half_width, sh.relative_pct, sh.minimum_detectable_effect)))
    vs = arm("shuffled", 1.0, reference="agm@1")  # shuffled − AGM: the page states AGM − shuffled
    claims.append(("| AGM − shuffled, λ = 1 | same | {} | {} ± {} | {}% | ±{} | — |",
                   (vs.seeds, -vs.paired_diff, vs.ci95_half_width, -100 * vs.paired_diff / vs.arm_mean,
                    vs.minimum_detectable_effect)))
    a01, p01, r01 = (arm("agm", 0.1, m) for m in ("fd_digits", "precision", "recall"))
    a1, p1, r1, k1 = (arm("agm", 1.0, m) for m in ("fd_digits", "precision", "recall", "kd_digits"))
    sw1 = sweep.loc[("agm", 1.0)]
    w01 = sweep.loc[("agm", 0.1)].w_ratio
    claims += [
        ("the interval [{}, {}] excludes the paper's {}; the paper's effect would need {} seeds at this paired SD "
         "({}). Precision {} ± {} and recall {} ± {} (the paper: {}%, {}%, i.e. {} and {} here; detectable at ±{} "
         "and ±{})",
         (a01.paired_diff - a01.ci95_half_width, a01.paired_diff + a01.ci95_half_width,
          a01.paper_relative_pct / 100 * a01.reference_mean, a01.seeds_for_paper_effect, a01.paired_sd,
          p01.paired_diff, p01.ci95_half_width, r01.paired_diff, r01.ci95_half_width, p01.paper_relative_pct,
          r01.paper_relative_pct, p01.paper_relative_pct / 100 * p01.reference_mean,
          r01.paper_relative_pct / 100 * r01.reference_mean, p01.minimum_detectable_effect,
          r01.minimum_detectable_effect)),
        ("at λ = 0.1 the weights spread by at most e^0.1 (measured max/min {} in the λ sweep), so AGM is the baseline "
         "with a ±{}% loss weight.", (w01, 100 * (math.sqrt(w01) - 1))),
        ("where the {}-seed sweep's mean was lowest ({} ± {} at 1,000 samples): with {} seeds at 10,000 samples the "
         "difference is {}, interval [{}, {}]; the sweep's {} was sample noise",
         (sw1.seeds, sw1.fd_digits_minus_baseline, sw1.fd_digits_minus_baseline_ci, a1.seeds, a1.paired_diff,
          a1.paired_diff - a1.ci95_half_width, a1.paired_diff + a1.ci95_half_width, sw1.fd_digits_minus_baseline)),
        ("Precision {} ± {}, recall {} ± {}; kd_digits {} ± {} (its noise",
         (p1.paired_diff, p1.ci95_half_width, r1.paired_diff, r1.ci95_half_width, k1.paired_diff, k1.ci95_half_width)),
        ("The paper's {}% would need {} seeds at this SD ({}).",
         (a1.paper_relative_pct, a1.seeds_for_paper_effect, a1.paired_sd)),
    ]
    # the metric-vs-steps claim
    files = sorted((RESULTS / page / "steps_l0.1").glob("*/s*.csv"))
    step_seeds = sorted({int(f.stem[1:]) for f in files})
    by_fraction = gaps.reset_index().set_index("fraction")
    g75, last = by_fraction.loc[0.75], gaps.iloc[-1]
    nd = _no_detach_paired()
    collapse = _csv("no-detach", "collapse.csv")
    claims += [
        ("Paired by seed over {} seeds ({}–{}) at 5,000 samples per snapshot",
         (tuple(gaps.seeds), step_seeds[0], step_seeds[-1])),
        ("baseline fd_digits is {} ± {} at {}% of the steps (the paper's claim needs ≤ 0 by 70%) and its mean "
         "crosses 0 at no snapshot ({} ± {} at {}%); the low end of its 95% band crosses at step {}. AGM is where "
         "the baseline itself is at each step: the baseline's own gap to its final value is {} ± {} at {}%.",
         (g75.gap_mean, g75.gap_95_half_width, 100 * 0.75, last.gap_mean, last.gap_95_half_width, 100 * last.fraction,
          sc.paired_crossing_95_low, g75.baseline_gap_mean, g75.baseline_gap_95_half_width, 100 * 0.75)),
        ("their smoothed losses never differed by more than {}% (drift) and {}% (L_V), and at 10,000 samples "
         "`no_detach` − AGM fd_digits is {} ± {} ({} seeds)",
         (100 * collapse.max_relative_gap_drift_loss.max(), 100 * collapse.max_relative_gap_potential_loss.max(),
          *nd["fd_digits"], nd["seeds"])),
        ("Baseline and AGM at λ = 0.1, seeds {}–{}, 1,000 steps", (step_seeds[0], step_seeds[-1])),
        ("(the decomposition below: a paired difference at 1,000 samples has SD {}, at 5,000 about {}, against the "
         "paper's effect of about {}).",
         (fd.loc[1000].paired_sd, fd.loc[5000].paired_sd, -a01.paper_relative_pct / 100 * a01.reference_mean)),
        ("Paired by seed, mean ± 95% t-interval over the {} seeds:", (tuple(gaps.seeds),)),
    ]
    for step, g in gaps.iterrows():
        diff = _bold(_resolved(g.same_step_diff_mean, g.same_step_diff_95_half_width))
        base_cell = "{}" if g.baseline_gap_95_half_width == 0 else f"{BOLD}{{}} ± {{}}{BOLD}"
        base_values = ((g.baseline_gap_mean,) if g.baseline_gap_95_half_width == 0
                       else (g.baseline_gap_mean, g.baseline_gap_95_half_width))
        claims.append((f"| {step} ({{}}%) | {BOLD}{{}} ± {{}}{BOLD} | {base_cell} | {diff} |",
                       (100 * g.fraction, g.gap_mean, g.gap_95_half_width, *base_values, g.same_step_diff_mean,
                        g.same_step_diff_95_half_width)))
    per_seed = Counter(str(sc.per_seed_steps).split())
    numeric = sorted(int(k) for k in per_seed if k != "never")
    first = gaps.iloc[0]
    at_first = sc.baseline_final_fd_digits + first.baseline_gap_mean  # the baseline's distance at the first snapshot
    claims += [
        ("The baseline's final fd_digits at 5,000 samples is {} (mean over seeds). At {}% of the steps AGM is {}% "
         "above it", (sc.baseline_final_fd_digits, 100 * 0.75, 100 * g75.gap_mean / sc.baseline_final_fd_digits)),
        (f"first reaches its baseline's final value at step {{}} for {WORDS[per_seed[str(numeric[0])]]} seed, {{}} for "
         f"{WORDS[per_seed[str(numeric[1])]]} and never for {WORDS[per_seed['never']]}", tuple(numeric)),
        ("at {} steps AGM is {} ± {} below the baseline of the same seed ({}% of a distance of {})",
         (gaps.index[0], -first.same_step_diff_mean, first.same_step_diff_95_half_width,
          -100 * first.same_step_diff_mean / at_first, at_first)),
        ("(gap − half-width) reaches 0 at step {} (linear between snapshots)", (sc.paired_crossing_95_low,)),
    ]
    # where the spread comes from
    ns = [1000, 2000, 5000, 10000]
    claims += [
        ("The {} sample sets above ({} seeds × baseline and AGM, 10,000 samples each)",
         (tuple(fd.sample_sets), h200.seed.nunique())),
        ("| mean over the {} sets | {} | {} | {} | {} |", (tuple(fd.sample_sets), *fd.loc[ns, "mean"])),
        ("| bias against n = 10,000 | **{}** | {} | {} | {} |", tuple(fd.loc[ns, "bias_vs_largest_n"])),
        ("| SD over disjoint sample sets of one model | {} | {} | {} | — |", tuple(fd.loc[ns[:3], "sample_set_sd"])),
        ("| SD over training seeds (one sample set each) | {} | {} | {} | {} |", tuple(fd.loc[ns, "training_seed_sd"])),
        ("| SD of AGM − baseline, paired by seed | {} | {} | {} | **{}** |", tuple(fd.loc[ns, "paired_sd"])),
        ("its SD ({}) is most of the seed-to-seed SD ({}), and the Fréchet distance's bias ({}, ~1/n) is {}% of the "
         "value at 10,000. At 10,000 the sample-set part is small (≈ {}/√2 ≈ {}, extrapolated as 1/√n)",
         (fd.loc[1000].sample_set_sd, fd.loc[1000].training_seed_sd, fd.loc[1000].bias_vs_largest_n,
          100 * fd.loc[1000].bias_vs_largest_n / fd.loc[10000, "mean"], fd.loc[5000].sample_set_sd,
          fd.loc[5000].sample_set_sd / math.sqrt(2))),
        ("their difference has SD {} against {} for either model alone.",
         (fd.loc[10000].paired_sd, fd.loc[10000].training_seed_sd)),
        ("give one sample set's fd_digits with SD {}, more than the training seeds' {}",
         (fd.loc[10000].feature_net_sd_at_largest_n, fd.loc[10000].training_seed_sd)),
        ("their paired SDs at 10,000 are {} and {}.",
         (dec.loc[("precision", 10000)].paired_sd, dec.loc[("recall", 10000)].paired_sd)),
    ]
    kd = dec.loc["kd"]
    claims.append(("its paired SD ({}–{}) is ~{}× its paired mean and ~{}% of its value, against {}% for fd_digits at "
                   "10,000.",
                   (kd.paired_sd.min(), kd.paired_sd.max(),
                    Near(kd.loc[10000].paired_sd / kd.loc[10000].paired_mean, 0.25),
                    Near(100 * kd.loc[10000].paired_sd / kd.loc[10000, "mean"], 0.25),
                    100 * fd.loc[10000].paired_sd / fd.loc[10000, "mean"])))
    # the evaluation chosen
    rows = _csv(page, "decomposition_rows.csv")
    real = rows[rows.model == "real_heldout"].sort_values("feature_seed").fd
    mde = minimum_detectable_effect(fd.loc[10000].paired_sd, 10)
    claims += [
        ("the bias falls from +{} to ~0.1 and the paired SD from {} to {}.",
         (fd.loc[1000].bias_vs_largest_n, fd.loc[1000].paired_sd, fd.loc[10000].paired_sd)),
        ("its paired resolution is that of the n = 1,000 column (SD {}).", (fd.loc[1000].paired_sd,)),
        ("with SD {}, 10 seeds detect ±{} ({}%) at 80% power; the paper's {}% needs {}.",
         (fd.loc[10000].paired_sd, mde, 100 * mde / fd.loc[10000, "mean"], -PAPER_DISTANCE_PCT,
          (a01.seeds_for_paper_effect,
           seeds_needed(PAPER_DISTANCE_PCT / 100 * fd.loc[10000, "mean"], fd.loc[10000].paired_sd)))),
        ("(fd_digits {}, {}, {} for the three classifiers)", tuple(real)),
        ("baseline and AGM at λ = 0.1, seeds {}–{}, 10,000 samples, that machine's classifier",
         seeds(h200, "agm")),
        ("(baseline, AGM and shuffled at λ = 1, seeds {}–{}, 10,000 samples, with kd_digits)", seeds(cpu, "agm")),
        ("baseline and AGM at λ = 0.1, seeds {}–{}, copied from", (step_seeds[0], step_seeds[-1])),
    ]
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- converged


def _converged() -> list[Claim]:
    page = "converged"
    curve = _csv(page, "curve.csv").set_index(["arm", "step"])
    every_paired = _csv(page, "paired.csv")
    paired = every_paired[every_paired.arm == "agm_l0.1"].set_index("step")
    paired_l1 = every_paired[every_paired.arm == "agm_l1"].set_index("step")
    runs = _csv(page, "runs.csv")
    plateau = _json(page, "plateau.json")
    sph = {r["config"]: r for r in _json(page, "seeds_per_hour_cpu.json")["summary"]}
    power = _csv("power", "summary.csv").query("metric == 'fd_digits' and reference == 'baseline' and model == 'agm'")
    arms = plateau["arms"]
    px = plateau["heldout_reference"]["pixels"]
    power_l1 = power.query("`lambda` == 1.0").iloc[0]

    def both(column: str, step: int) -> float:
        """The baseline's and AGM λ = 0.1's mean at ``step``, the two arms trained to 16,000 steps (the page's "at
        4k": equal seeds per arm, so the mean over their runs)."""
        return curve.xs(step, level="step").loc[["baseline", "agm_l0.1"], column].mean()

    def cells(arm: str, steps) -> tuple:
        return tuple(x for st in steps for x in (curve.loc[(arm, st)].fd_digits, curve.loc[(arm, st)].fd_digits_hw))

    steps = sorted(curve.index.get_level_values("step").unique())
    dist = [both("px_nn_train_median", st) for st in steps]
    below = next(i for i, v in enumerate(dist) if v < px["nn_train_median"])
    copies = runs.groupby("step").px_copy_share
    b8, a8, l8 = curve.loc[("baseline", 8000)], curve.loc[("agm_l0.1", 8000)], curve.loc[("agm_l1", 8000)]
    base_4k = curve.loc[("baseline", 4000)].fd_digits
    diffs = pd.concat([every_paired.d_precision.abs(), every_paired.d_recall.abs()])
    f, _ = _params_f_and_v()
    claims = [
        ("fd_digits (mean over {} seeds, 95% t-interval)", (tuple(curve.loc[(slice(None), [1000, 2000, 4000]), "n"]),)),
        ("| baseline | {} ± {} | {} ± {} | {} ± {} |", cells("baseline", (1000, 2000, 4000))),
        ("| AGM (λ = 0.1) | {} ± {} | {} ± {} | {} ± {} |", cells("agm_l0.1", (1000, 2000, 4000))),
        ("| AGM (λ = 1) | {} ± {} | {} ± {} | {} ± {} |", cells("agm_l1", (1000, 2000, 4000))),
        ("Precision rises from {} to {} over the same steps.", (both("precision", 1000), both("precision", 4000))),
        ("**The plateau is {} steps.**", (tuple(a["plateau_length_5pct"] for a in arms.values()),)),
        ("it goes up slightly: {} ± {} for the baseline, {} ± {} for AGM at λ = 0.1 and {} ± {} at λ = 1, {} seeds "
         "each.", (b8.fd_digits, b8.fd_digits_hw, a8.fd_digits, a8.fd_digits_hw, l8.fd_digits, l8.fd_digits_hw,
                   (b8.n, a8.n, l8.n))),
        ("gives a plateau length of {} for all three arms ([plateau.json](plateau.json), on the seeds that reached "
         "each arm's last step: {}, {} and {}). Under the 10% rule the baseline's is {}.",
         (tuple(a["plateau_length_5pct"] for a in arms.values()), *(len(arms[a]["seeds"]) for a in
                                                                    ("baseline", "agm_l0.1", "agm_l1")),
          arms["baseline"]["plateau_length_10pct"])),
        ("Precision keeps rising: {} at 4k, {} at 8k, {} at 16k.",
         tuple(both("precision", st) for st in (4000, 8000, 16000))),
        ("drops below the held-out real digits' own {} between {} and {} steps. It is {} at 4k, {} at 8k and {} at "
         "16k.",
         (px["nn_train_median"], steps[below - 1], steps[below],
          *(both("px_nn_train_median", st) for st in (4000, 8000, 16000)))),
        ("falls from {} at 1k to {} at 4k, {} at 8k and {} at 16k. Real held-out digits score {}.",
         (*(both("px_train_heldout_ratio", st) for st in (1000, 4000, 8000, 16000)), px["train_heldout_ratio"])),
        ("is at most {}% per seed up to 4,000 steps, at most {}% at 8,000 and {}–{}% at 16,000 ({} for real digits).",
         (100 * runs[runs.step <= 4000].px_copy_share.max(), 100 * copies.max()[8000], 100 * copies.min()[16000],
          100 * copies.max()[16000], px["copy_share"])),
        ("(paired by seed, same sampling noise, {} seeds)", (tuple(paired.loc[:8000, "n"]),)),
        *((f"| {st // 1000}k | {{}} ± {{}} | {{}} ± {{}} |",
           (paired.loc[st].d_fd_digits, paired.loc[st].d_fd_digits_hw, paired_l1.loc[st].d_fd_digits,
            paired_l1.loc[st].d_fd_digits_hw)) for st in paired_l1.index),
        ("10 seeds at λ = 1 ([../power](../power/README.md)), measured {} ± {} there",
         (power_l1.paired_diff, power_l1.ci95_half_width)),
        ("Precision and recall differ by ≤ {}.", (AtMost(tuple(diffs)),)),
        ("the paper's effect of {}%, about {} at the plateau's {}",
         (PAPER_DISTANCE_PCT, PAPER_DISTANCE_PCT / 100 * base_4k, base_4k)),
        ("needed {}–{} seeds for that", (power.seeds.min(), power.seeds.max())),
        ("no way of training many seeds reaches {}× one seed",
         (Under(tuple(x for r in sph.values() for x in r["factors"])),)),
        ("Two one-thread processes side by side give {}–{}×.", (min(sph["lone x 2"]["factors"]),
                                                                 max(sph["lone x 2"]["factors"]))),
        ("and bf16 autocast each give about {}×", (tuple(sph[c]["median_factor"] for c in
                                                         ("stacked 4", "stacked 8", "lone bf16")),)),
        ("where one {}M network leaves the device idle", (f,)),
        ("so the 16,000-step points have {} seeds.", (tuple(curve.xs(16000, level="step").n),)),
    ]
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- no_detach


def _no_detach_paired() -> dict:
    """no_detach − AGM over the seeds of docs/results/no-detach/metrics.csv: mean and 95% half-width per metric."""
    m = _csv("no-detach", "metrics.csv").set_index(["model", "seed"])
    out = {metric: _paired(m.loc["no_detach"][metric], m.loc["agm"][metric])
           for metric in ("fd_digits", "precision", "recall")}
    out["seeds"] = len(m.loc["agm"])
    return out


def _minutes(curves: pd.DataFrame) -> pd.Series:
    """Each run's training time, from the step times logged at every logged step (each the mean over its interval)."""
    interval = curves.step.diff().mode().iloc[0]
    return curves.groupby(["model", "seed"]).step_time_s.sum() * interval / 60


def _no_detach() -> list[Claim]:
    page = "no-detach"
    k = _csv(page, "collapse.csv").set_index("seed")
    m = _csv(page, "metrics.csv").set_index(["model", "seed"])
    curves = _csv(page, "curves.csv")
    features = _json(page, "features.json")
    k1 = _csv(page, "lambda-1", "collapse.csv").iloc[0]
    m1 = _csv(page, "lambda-1", "metrics.csv").set_index("model")
    c1 = _csv(page, "lambda-1", "curves.csv").set_index(["model", "step"])
    nd = _no_detach_paired()
    power = _csv("power", "summary.csv").query("metric == 'fd_digits'")
    decomposition = _csv("power", "decomposition.csv").set_index(["metric", "n"])
    f, v = _params_f_and_v()
    potential = [k[f"{r}_potential_loss_last10pct"] for r in ("agm", "no_detach")]
    ratios = [k[f"{r}_w_ratio_last10pct"] for r in ("agm", "no_detach")]
    last = curves[(curves.seed == 100) & (curves.step == curves.step.max())]
    claims = [
        ("seeds ({}, {}, {}), each trained to {} steps", (*k.index, tuple(k.steps_reached))),
        ("L_V stayed near {} (far below", (pd.concat(potential).mean(),)),
        ("never differed by more than {}%, their smoothed L_V by more than {}%.",
         (100 * k.max_relative_gap_drift_loss.max(), 100 * k.max_relative_gap_potential_loss.max())),
    ]
    for seed, r in k.iterrows():
        collapse = "none" if pd.isna(r.collapse_step) else f"{int(r.collapse_step):,}"
        claims.append((f"| {seed} | {{}} | {collapse} | {{}}% | {{}}% | {{}} / {{}} | {{}} / {{}} |",
                       (r.steps_reached, 100 * r.max_relative_gap_drift_loss, 100 * r.max_relative_gap_potential_loss,
                        r.agm_drift_loss_last10pct, r.no_detach_drift_loss_last10pct, r.agm_potential_loss_last10pct,
                        r.no_detach_potential_loss_last10pct)))
    claims += [
        ("ratio in a batch averages {} over the last 10% of all six runs; seed 100's last batch held weights from {} "
         "to {})",
         (pd.concat(ratios).mean(), tuple(last.w_min), tuple(last.w_max))),
        ("real-vs-real reference fd_digits {} on the held-out images", (features["real_vs_real"]["fd_digits"],)),
    ]
    for seed in k.index:
        claims.append((f"| {seed} | {{}} / {{}} | {{}} / {{}} | {{}} / {{}} |",
                       tuple(m.loc[(model, seed)][metric] for metric in ("fd_digits", "precision", "recall")
                             for model in ("agm", "no_detach"))))
    res = any(_resolved(*nd[x]) for x in ("fd_digits", "precision", "recall"))
    claims += [
        (f"Paired by seed (`no_detach` − AGM, mean ± 95% t-interval over {{}} seeds): fd_digits {{}} ± {{}}, precision "
         f"{{}} ± {{}}, recall {{}} ± {{}}; {'a' if res else 'no'} difference resolved, and with {{}} seeds an "
         "fd_digits difference smaller than about ±{} could not be.",
         (nd["seeds"], *nd["fd_digits"], *nd["precision"], *nd["recall"], nd["seeds"], nd["fd_digits"][1])),
        ("the power study's 1,000-step models score {}–{} at 10,000 samples",
         (min(power.reference_mean.min(), power.arm_mean.min()),
          max(power.reference_mean.max(), power.arm_mean.max()))),
        ("classifiers alone move one sample set's value by SD {})",
         (decomposition.loc[("fd", 10000)].feature_net_sd_at_largest_n,)),
        ("digits and {}M parameters (V {}M)", (f, v)),
        # λ = 1
        ("max/min ratio about {} in a batch for AGM over the last 10% of the steps, and {} for `no_detach`, whose "
         "ratio grew from {} at step 10,000 to {} at 20,000 while AGM's stayed at {}.",
         (k1.agm_w_ratio_last10pct, k1.no_detach_w_ratio_last10pct, c1.loc[("no_detach", 10000)].w_ratio,
          c1.loc[("no_detach", 20000)].w_ratio, c1.loc[("agm", 20000)].w_ratio)),
        ("every loss finite, L_V {} (AGM) and {} (`no_detach`) over the last 10%, the smoothed drift losses within "
         "{}% of each other and L_V within {}% at every step.",
         (k1.agm_potential_loss_last10pct, k1.no_detach_potential_loss_last10pct,
          100 * k1.max_relative_gap_drift_loss, 100 * k1.max_relative_gap_potential_loss)),
        ("AGM fd_digits {}, precision {}, recall {}; `no_detach` {}, {}, {} (one seed: no interval).",
         tuple(m1.loc[model][metric] for model in ("agm", "no_detach")
               for metric in ("fd_digits", "precision", "recall"))),
    ]
    minutes, minutes1 = _minutes(curves), _minutes(c1.reset_index())
    claims += [
        ("both runs side by side, one thread each ({} and {} min).",
         (minutes1[("agm", 100)], minutes1[("no_detach", 100)])),
        ("Seed 100's two 20k-step runs took {} and {} min here", (minutes[("agm", 100)], minutes[("no_detach", 100)])),
        ("seed 102's, run later by themselves, {} and {} min,", (minutes[("agm", 102)], minutes[("no_detach", 102)])),
    ]
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- bf16 sampling


def _sample_precision() -> list[Claim]:
    page = "sample-precision"
    j = _json(page, "cpu-agm-l0.1-s1-4000steps.json")
    moved = tuple(abs(r[f"{m}_bf16"] - r[f"{m}_none"]) for r in j["rows"] for m in ("precision", "recall"))
    claims = [
        ("| bf16 − float32, paired by noise seed, {} seeds | {} ± {} (95% t-interval) |",
         (len(j["rows"]), j["paired_diff_bf16_minus_float32"], j["paired_diff_ci95_half_width"])),
        ("| SD of the float32 distance across noise seeds (the sampling noise) | {} |", (j["sampling_noise_sd"],)),
        ("Precision and recall moved by at most {}.", (AtMost(moved),)),
    ]
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- GPU check


def _gpu() -> list[Claim]:
    page = GPU
    check = _json(page, "gpu_check.json")
    extra = _json(page, "extra-seeds", "gpu_check.json")
    log = (RESULTS / page / "gpu_check.log").read_text()
    extra_log = (RESULTS / page / "extra-seeds" / "gpu_check.log").read_text()
    seeds = _csv(page, "extra-seeds", "extra_seeds.csv")
    env = check["sections"]["env"]["result"]
    train = check["sections"]["train"]["result"]
    compiled = check["sections"]["train_compiled"]["result"]
    sample = check["sections"]["sample"]["result"]
    cudnn = env["cudnn"]
    claims = [
        (f"one NVIDIA H200 ({{}} GiB, compute capability {env['capability']}, {{}} SMs, driver "
         f"{env['nvidia_smi'].split(',')[0]}), {{}} CPU cores, Python {env['python']}, **torch {env['torch']}**",
         (env["gpu_memory_gib"], env["multiprocessors"], env["cpu_count"])),
        (f"Triton {env['triton']}, cuDNN {cudnn // 10000}.{cudnn % 10000 // 100}.", ()),
        ("| every section; {} s |", (check["elapsed_s"],)),
        ("| {} extra default-profile seeds; {} s |", (seeds.seed.nunique(), extra["elapsed_s"])),
        ("% of dense bf16 peak ({})", (env["dense_bf16_peak_tflops"],)),
    ]
    runs = {(r["variant"], r["compile"], r["channels_last"]): r for r in train["runs"] + compiled["runs"]}
    for (variant, compile_, channels_last), r in runs.items():
        mode = ", ".join(m for m, on in (("torch.compile" if compile_ else "eager", True),
                                         ("channels_last", channels_last)) if on)
        claims.append((f"| {'AGM' if variant == 'agm' else variant} | {mode} | "
                       "{} | {} | {} | {} | {} | {} | {} | {} |",
                       (r["step_time_ms"], r["images_per_s"], r["flops_per_image"] / 1e9, r["achieved_tflops"],
                        100 * r["peak_fraction"], r["peak_memory_gib"], r["host_syncs_per_step"],
                        r["projected_hours_500k_steps"])))

    def ratio(key: str, compile_: bool, channels_last: bool) -> float:
        config = (compile_, channels_last)
        return 100 * (runs[("agm", *config)][key] / runs[("baseline", *config)][key] - 1)

    configs = [(False, False), (False, True), (True, True)]
    cl_gain = [100 * (runs[(v, False, True)]["images_per_s"] / runs[(v, False, False)]["images_per_s"] - 1)
               for v in ("baseline", "agm")]
    float32, bf16 = sample["runs"]
    [probe] = sample["probe"]
    claims += [
        ("i.e. ≈ {} images/s: the H200 is {}× that eagerly and **{}× with `torch.compile`**",
         (train["paper_images_per_s"], tuple(r["vs_paper_images_per_s"] for r in train["runs"]),
          tuple(r["vs_paper_images_per_s"] for r in compiled["runs"]))),
        ("AGM costs **+{}% (eager) / +{}% (compiled)** step time over the baseline, beside +{}% FLOPs: V is small. "
         "channels_last alone gains {}–{}%",
         (ratio("step_time_ms", False, False), ratio("step_time_ms", True, True),
          tuple(ratio("flops_per_image", *c) for c in configs), min(cl_gain), AtMost(tuple(cl_gain)))),
        ("**{} ms per drift evaluation, {} images/s at NFE 500, {} min for 10,000 samples** ({} steps timed, projected "
         "linearly to 500). bf16 autocast was no faster ({} ms). One drift evaluation at batch {} took {} GiB",
         (1000 * float32["seconds_per_nfe"], float32["images_per_s_at_nfe_500"],
          float32["projected_minutes_10k_at_nfe_500"], float32["timed_nfe"], 1000 * bf16["seconds_per_nfe"],
          probe["batch"], probe["peak_memory_gib"])),
        ("The probe stopped at batch {} because its first call included cuDNN's autotuning ({} s)",
         (sample["largest_batch_that_fits"], probe["one_nfe_s"])),
        ("(two models × {} min)", (float32["projected_minutes_10k_at_nfe_500"],)),
    ]
    # the two sections whose numbers only the log holds
    caps = dict(re.findall(r"^===== (\w+) \(cap (\d+) s\)", log, re.M))
    close = re.search(r"max relative drift-loss difference ([\d.]+) \(tolerance ([\d.]+)\)", log)
    fell = re.search(r"drift loss ([\d.]+) -> ([\d.]+) over (\d+) steps", log)
    took = {name: float(s) for name, s in re.findall(r"^(\S+): rc 0 in ([\d.]+) s", log, re.M)}
    claims += [
        ("outlasted the per-section caps of that commit ({} s and {} s)", (caps["correctness"], caps["stages"])),
        ("the greatest relative difference of the drift loss was **{}**, against a stated tolerance of {} (pass).",
         close.groups()),
        ("the drift loss fell from **{}** (mean of the first 30 of {} steps) to **{}** (the last 30)",
         (fell[1], fell[3], fell[2])),
        ("prepare ({} s), features ({} s), train baseline ({} s), train AGM ({} s), sample ×2 ({} s, {} s), "
         "evaluate ×2 ({} s each)",
         (took["prepare"], took["features"], took["train_baseline@0"], took["train_agm@0"], took["sample@baseline-0"],
          took["sample@agm-0"], (took["evaluate@baseline-0"], took["evaluate@agm-0"]))),
    ]
    # the extra default-profile seeds
    waves = [float(s) for s in re.findall(r"extra_seeds: wave \[[\d, ]+\] in (\d+) s", extra_log)]
    by = seeds.set_index(["model", "seed"])
    base, agm = by.loc["baseline"], by.loc["agm"]
    claims += [
        ("for training seeds {}–{}, baseline and AGM", (seeds.seed.min(), seeds.seed.max())),
        ("~{} s a wave.", (Near(sum(waves) / len(waves), 0.05),)),
        ("| baseline mean (SD over {} seeds) |", (len(base),)),
    ]
    for metric in ("fd_digits", "precision", "recall"):
        diff, hw = _paired(agm[metric], base[metric])
        sd = (agm[metric] - base[metric].loc[agm.index]).std()
        relative = " ({}%)" if metric == "fd_digits" else ""
        claims.append((f"| {metric} | {{}} ({{}}) | {{}} ({{}}) | {{}} ± {{}}{relative} | {{}} |",
                       (base[metric].mean(), base[metric].std(), agm[metric].mean(), agm[metric].std(), diff, hw,
                        *((100 * diff / base[metric].mean(),) if relative else ()), sd)))
        if metric == "fd_digits":
            paper = PAPER_DISTANCE_PCT / 100 * base[metric].mean()
            inside = diff - hw <= paper <= diff + hw
            claims.append((f"The paper's effect, {{}}% of the baseline's distance, is {{}} here; the interval "
                           f"[{{}}, {{}}] {'includes' if inside else 'excludes'} it.",
                           (PAPER_DISTANCE_PCT, paper, diff - hw, diff + hw)))
    return [Claim(page, text, tuple(values)) for text, values in claims]


# ---------------------------------------------------------------------------------------------------- the tests

PAGES = {"lambda-sweep": _lambda_sweep, "power": _power, "converged": _converged, "no-detach": _no_detach,
         "sample-precision": _sample_precision, GPU: _gpu}
CLAIMS = [claim for build in PAGES.values() for claim in build()]


def _matches(claim: Claim) -> list[re.Match]:
    return list(re.finditer(claim.regex, page_text(claim.page)))


@pytest.mark.parametrize("claim", CLAIMS, ids=str)
def test_a_results_page_states_its_files_numbers(claim: Claim) -> None:
    found = _matches(claim)
    text = " ".join(claim.text.replace(BOLD, "").split())
    assert len(found) == 1, f"{claim.page}/README.md states {text!r} {len(found)} times, not once"
    stated = found[0].groups()
    assert len(stated) == len(claim.values), (stated, claim.values)
    wrong = [(s, v) for s, v in zip(stated, claim.values) if not agrees(s, v)]
    assert not wrong, f"{claim}: stated vs file {wrong}"


def test_every_results_page_is_checked() -> None:
    pages = {str(p.parent.relative_to(RESULTS)) for p in RESULTS.glob("**/README.md")}
    assert pages == set(PAGES), pages ^ set(PAGES)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_plus_minus_on_a_page_is_checked(page: str) -> None:
    """A "±" number (a mean's interval, a detectable effect) is a result: each sits inside a checked claim."""
    text = page_text(page)
    spans = [m.span() for c in CLAIMS if c.page == page for m in _matches(c)]
    loose = [text[max(0, m.start() - 40):m.end() + 20] for m in re.finditer(r"± ?(?!95% )[−+-]?\d", text)
             if not any(a <= m.start() < b for a, b in spans)]
    assert not loose, loose


def test_the_bf16_check_summarises_its_rows() -> None:
    """The page reads the JSON's summary; the summary is the paired t-interval of the JSON's rows."""
    j = _json("sample-precision", "cpu-agm-l0.1-s1-4000steps.json")
    ci = mean_ci([r["fd_digits_bf16"] - r["fd_digits_none"] for r in j["rows"]])
    assert (ci.mean, ci.half_width) == pytest.approx((j["paired_diff_bf16_minus_float32"],
                                                      j["paired_diff_ci95_half_width"]))
    sd = pd.Series([r["fd_digits_none"] for r in j["rows"]]).std()
    assert sd == pytest.approx(j["sampling_noise_sd"])


@pytest.mark.parametrize(("stated", "value", "ok"), [
    ("0.93", 0.930567, True), ("0.93", 0.936, False), ("−0.71", -0.7138, True), ("+0.96", 0.9604, True),
    ("−0.0002", -0.00015, True), ("−0.000", -3.3e-05, True), ("1,000", 1000, True), ("46", 46.2387, True),
    ("0.004", AtMost((0.00348,)), True), ("0.005", AtMost((0.00348,)), False), ("3", Under((1.52,)), True),
    ("75", Near(74.0, 0.05), True), ("0.96", (0.9566, 0.9542), False),
])
def test_agrees_is_rounding_as_written(stated: str, value, ok: bool) -> None:
    assert agrees(stated, value) is ok


def test_the_converged_page_names_the_one_curve_interval_that_excludes_zero() -> None:
    """The page: "Only λ = 1 at 1,000 steps has an interval that excludes 0. That is one interval of eight"."""
    paired = _csv("converged", "paired.csv").query("step <= 8000")
    low, high = paired.d_fd_digits - paired.d_fd_digits_hw, paired.d_fd_digits + paired.d_fd_digits_hw
    excludes = paired[(low > 0) | (high < 0)]
    assert list(zip(excludes.arm, excludes.step)) == [("agm_l1", 1000)] and len(paired) == 8
    text = (ROOT / "docs" / "results" / "converged" / "README.md").read_text()
    assert "Only λ = 1 at 1,000 steps has an interval that excludes 0. That is one interval of eight" in text
