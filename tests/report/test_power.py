"""Power of the paired t-test (agm/report/power.py) against the normal approximation and its own definition."""

import math

import pytest
from scipy import stats

from agm.report.power import describe_power, minimum_detectable_effect, paired_power, seeds_needed


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
