"""Tests for agm/report/stats.py: Student-t intervals over seeds (closed forms, n/a reasons), and the power of the
paired t-test against an independent implementation's values (statsmodels' TTestPower), the normal
approximation and its own definition."""

import math

import pytest
from scipy import stats

from agm.report.stats import (
    MeanCI,
    describe_power,
    mean_ci,
    minimum_detectable_effect,
    paired_power,
    seeds_needed,
    unusable,
)

# t quantiles from tables: t_{0.975, 1} = 12.7062047..., t_{0.95, 2} = 2.9199855...
T_975_DF1 = 12.706204736174707
T_95_DF2 = 2.919985580355516


def test_power_at_zero_effect_is_the_level():
    # with no effect the noncentral t is the central t: power is the two-sided level itself
    assert paired_power(0.0, 1.0, 10) == pytest.approx(0.05, abs=1e-12)


def test_minimum_detectable_effect_has_the_asked_power():
    for n in (3, 10, 40):
        mde = minimum_detectable_effect(0.2, n)
        assert paired_power(mde, 0.2, n) == pytest.approx(0.8, abs=1e-9)


def test_large_n_approaches_the_normal_formula():
    # n → ∞: t → z and MDE → (z_{1−α/2} + z_{1−β}) s / √n (the omitted lower tail is ~1e-9 there)
    n, sd = 20_000, 1.5
    normal = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sd / math.sqrt(n)
    assert minimum_detectable_effect(sd, n) == pytest.approx(normal, rel=1e-3)


def test_seeds_needed_is_the_least_n_with_enough_power():
    sd, effect = 0.215, 0.31  # the default profile's paired SD of fd_digits at 10k samples; 10.7% of 2.92
    n = seeds_needed(effect, sd)
    assert paired_power(effect, sd, n) >= 0.8 > paired_power(effect, sd, n - 1)
    assert seeds_needed(-effect, sd) == n  # two-sided: the sign does not matter
    assert seeds_needed(effect / 4, sd) > n


# Independent reference values: statsmodels 0.15.0, statsmodels.stats.power.TTestPower (the one-sample t-test on the
# paired differences, two-sided, alpha = 0.05), computed once and written here; R's
# power.t.test(type = "one.sample") gives the same (e.g. n = 10, delta = 1, sd = 1: power = 0.8030969).
TTESTPOWER_POWER = {  # (effect / sd, n) -> power
    (0.5, 3): 0.0841070558963894, (0.5, 5): 0.140516689990298, (0.5, 10): 0.2931756065140767,
    (1.0, 3): 0.1792553937765517, (1.0, 5): 0.4013899173717948, (1.0, 10): 0.8030968566327218,
    (2.0, 3): 0.4707494312784346, (2.0, 5): 0.9088848681009402, (2.0, 10): 0.9998419874351885,
}
TTESTPOWER_MDE = {3: 3.264043552819638, 5: 1.6819970833232674, 10: 0.9960019107624178}  # effect / sd at power 0.8
TTESTPOWER_N = {0.5: 33.36713118431779, 1.0: 9.93785094105438}  # the (real) n for power 0.8


@pytest.mark.parametrize("d,n", sorted(TTESTPOWER_POWER))
def test_power_matches_an_independent_implementation(d, n):
    sd = 0.3  # any scale: power depends on effect / sd alone
    assert paired_power(d * sd, sd, n) == pytest.approx(TTESTPOWER_POWER[(d, n)], abs=1e-6)


@pytest.mark.parametrize("n", sorted(TTESTPOWER_MDE))
def test_minimum_detectable_effect_matches_an_independent_implementation(n):
    assert minimum_detectable_effect(1.0, n) == pytest.approx(TTESTPOWER_MDE[n], rel=1e-5)


@pytest.mark.parametrize("d", sorted(TTESTPOWER_N))
def test_seeds_needed_is_the_independent_n_rounded_up(d):
    assert seeds_needed(d, 1.0) == math.ceil(TTESTPOWER_N[d])


def test_bad_inputs_fail():
    with pytest.raises(ValueError, match="n >= 2"):
        paired_power(1.0, 1.0, 1)
    with pytest.raises(ValueError, match="never detected"):
        seeds_needed(0.0, 1.0)


def test_describe_power_states_the_minimum_detectable_effect():
    base, agm = [2.8, 3.3, 2.9, 3.9], [2.9, 3.2, 2.9, 3.6]
    text = describe_power(base, agm, "fd_digits", paper_relative=-10.7)
    sd = stats.tstd([a - b for a, b in zip(agm, base)])
    assert text.startswith(f"fd_digits: paired SD {sd:.3g} over 4 seeds; minimum detectable effect (80% power")
    assert f"±{minimum_detectable_effect(sd, 4):.3g}" in text and "the paper's -10.7%" in text
    assert f"would need {seeds_needed(-0.107 * sum(base) / 4, sd)} seeds" in text
    assert describe_power([1.0], [2.0], "recall").endswith("n/a (one seed: no paired SD; run more seeds)")
    assert "n/a (a seed is missing" in describe_power([1.0, None], [2.0, 1.0], "recall")


# --- means with Student-t intervals over seeds -----------------------------------------------------


def test_mean_ci_two_values_closed_form() -> None:
    ci = mean_ci([1.0, 3.0])
    # s = sqrt(2), so half-width = t * sqrt(2) / sqrt(2) = t.
    assert ci == MeanCI(mean=2.0, half_width=pytest.approx(T_975_DF1), n=2)


def test_mean_ci_confidence_level() -> None:
    ci = mean_ci([0.0, 1.0, 2.0], confidence=0.90)
    assert ci.mean == pytest.approx(1.0)
    assert ci.half_width == pytest.approx(T_95_DF2 / math.sqrt(3))
    assert ci.n == 3


def test_mean_ci_single_value_has_nan_half_width() -> None:
    ci = mean_ci([28.53])
    assert ci.mean == 28.53 and ci.n == 1 and math.isnan(ci.half_width)
    assert ci.format(2) == "28.53"


def test_mean_ci_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.0)


def test_mean_ci_format() -> None:
    assert MeanCI(mean=25.4712, half_width=0.3349, n=3).format(2) == "25.47 ± 0.33"


def test_unusable_names_missing_and_non_finite_seeds() -> None:
    assert unusable([1.0, 2.0], seeds=[0, 1]) == ""
    assert unusable([1.0, None], seeds=[0, 1]) == "seed 1 missing"
    assert unusable([None, math.inf, None, math.nan], seeds=[3, 4, 5, 6]) == (
        "seeds 3, 5 missing, seed 6 is NaN, seed 4 is inf")
    assert unusable([math.nan, math.nan], seeds=[0, 1]) == "seeds 0, 1 are NaN"
    assert unusable([None, math.nan, 1.0]) == "1 of 3 missing, NaN"  # without seeds: unnamed
    with pytest.raises(ValueError, match="2 values for 1 seeds"):
        unusable([1.0, 2.0], seeds=[0])


@pytest.mark.parametrize(("values", "reason"), [([1.0, None], "seed 1 missing"), ([1.0, math.nan], "seed 1 is NaN"),
                                                ([math.inf, 1.0], "seed 0 is inf"), ([None], "seed 0 missing")])
def test_mean_ci_without_a_mean_is_na(values: list, reason: str) -> None:
    ci = mean_ci(values, seeds=list(range(len(values))))
    assert ci.reason == reason and ci.n == len(values)
    assert math.isnan(ci.mean) and math.isnan(ci.half_width)
    assert ci.format(2) == f"n/a ({reason})"
