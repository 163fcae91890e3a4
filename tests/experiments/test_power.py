"""The power / minimum-detectable-effect calculator, checked by closed forms and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from experiments.compare import compare
from experiments.power import minimum_detectable_effect, sample_size_per_arm, sequential_sample_size_per_arm
from experiments.stats import Estimate, VariantStats, mean_estimate

# A conversion rate of 5% seen on 20,000 units.
BASELINE = Estimate(value=0.05, variance=0.05 * 0.95 / 20_000, n=20_000)


def test_the_minimum_detectable_effect_is_the_textbook_one():
    plan = minimum_detectable_effect(BASELINE, n_per_arm=10_000, alpha=0.05, power=0.8)
    textbook = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * np.sqrt(0.05 * 0.95 * 2 / 10_000)
    assert plan.mde_absolute == pytest.approx(textbook, rel=1e-3)
    assert plan.mde_relative == pytest.approx(textbook / 0.05, rel=1e-3)
    # Looking at will costs sample: the always-valid test needs a larger effect at the same size.
    assert plan.mde_relative_sequential > 1.2 * plan.mde_relative


def test_sample_size_and_mde_are_inverse():
    n = sample_size_per_arm(BASELINE, mde_relative=0.10)
    # statsmodels solves both numerically (to about 1e-5).
    assert minimum_detectable_effect(BASELINE, n).mde_relative == pytest.approx(0.10, rel=1e-4)


def test_the_always_valid_sample_size_is_the_size_whose_sequential_mde_is_the_effect():
    fixed = sample_size_per_arm(BASELINE, mde_relative=0.05, power=0.9)
    sequential = sequential_sample_size_per_arm(BASELINE, mde_relative=0.05, power=0.9)
    plan = minimum_detectable_effect(BASELINE, sequential, power=0.9)
    assert plan.mde_relative_sequential == pytest.approx(0.05, rel=1e-6)
    # Looking at will costs sample: more units than the fixed horizon for the same effect.
    assert sequential > 1.5 * fixed
    # Unequal arms and CUPED enter as they do in the MDE.
    uneven = sequential_sample_size_per_arm(BASELINE, 0.05, power=0.9, ratio=3.0, variance_reduction=0.3)
    assert minimum_detectable_effect(BASELINE, uneven, power=0.9, ratio=3.0,
                                     variance_reduction=0.3).mde_relative_sequential == pytest.approx(0.05, rel=1e-6)
    with pytest.raises(ValueError):
        sequential_sample_size_per_arm(BASELINE, 0.0)


def test_cuped_shrinks_the_effect_by_the_root_of_the_remaining_variance():
    plain = minimum_detectable_effect(BASELINE, 10_000)
    adjusted = minimum_detectable_effect(BASELINE, 10_000, variance_reduction=0.36)
    assert adjusted.mde_absolute == pytest.approx(plain.mde_absolute * 0.8, rel=1e-9)
    assert sample_size_per_arm(BASELINE, 0.1, variance_reduction=0.36) == pytest.approx(
        0.64 * sample_size_per_arm(BASELINE, 0.1), rel=1e-6)


def test_at_the_planned_size_both_tests_detect_their_mde_with_the_promised_power():
    # The calculator assumes the treatment moves the mean, not the variance; a large enough sample keeps the
    # binomial variance of the treated arm close to the baseline's.
    n, runs = 200_000, 4_000
    plan = minimum_detectable_effect(BASELINE, n)
    rng = np.random.default_rng(40)

    def arm(rate: float) -> VariantStats:
        conversions = rng.binomial(n, rate, runs).astype(float)
        return VariantStats(n=np.full(runs, float(n)), sum_y=conversions, sum_y2=conversions)

    control = mean_estimate(arm(0.05))
    fixed = compare(control, mean_estimate(arm(0.05 + plan.mde_absolute)), planned_n=2 * n)
    always = compare(control, mean_estimate(arm(0.05 + plan.mde_absolute_sequential)), planned_n=2 * n)
    assert np.mean(fixed.p_value <= 0.05) == pytest.approx(0.8, abs=0.03)
    assert np.mean(always.p_value_sequential <= 0.05) == pytest.approx(0.8, abs=0.03)


def test_nonsense_plans_are_refused():
    with pytest.raises(ValueError):
        minimum_detectable_effect(BASELINE, 1000, power=1.2)
    with pytest.raises(ValueError):
        sample_size_per_arm(BASELINE, 0.1, variance_reduction=1.0)
