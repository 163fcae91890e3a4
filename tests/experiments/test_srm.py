"""The sample-ratio check: its chi-square, what it flags, and what no test on 20,000 units can see."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.srm import sample_ratio_check, srm_p_values


def _misassigned(rng: np.random.Generator, runs: int, per_arm: int, share: float) -> np.ndarray:
    """Units per arm when a bug sends `share` of the units meant for B to A (50/50 weights)."""
    meant_for_b = rng.binomial(2 * per_arm, 0.5, runs)
    moved = rng.binomial(meant_for_b, share)
    b = meant_for_b - moved
    return np.column_stack([2 * per_arm - b, b])


def test_the_statistic_is_pearsons_chi_square_against_the_weights():
    check = sample_ratio_check({"A": 10_500, "B": 9_500}, {"A": 0.5, "B": 0.5})
    assert check.expected == {"A": 10_000, "B": 10_000}
    assert check.chi2 == pytest.approx(2 * 500**2 / 10_000)
    assert check.mismatch and check.p_value < 1e-10


def test_unequal_weights_and_three_variants():
    balanced = sample_ratio_check({"A": 5_000, "B": 2_500, "holdout": 2_500}, {"A": 2, "B": 1, "holdout": 1})
    assert balanced.p_value == pytest.approx(1.0) and not balanced.mismatch
    assert sample_ratio_check({"A": 5_000, "B": 2_800, "holdout": 2_500}, {"A": 2, "B": 1, "holdout": 1}).mismatch


def test_units_in_a_variant_without_weight_are_refused():
    with pytest.raises(ValueError, match="without traffic weight"):
        sample_ratio_check({"A": 10, "B": 10, "C": 3}, {"A": 0.5, "B": 0.5})


def test_a_four_percent_assignment_bug_is_flagged_and_a_sound_split_rarely_is():
    rng = np.random.default_rng(30)
    runs = 20_000
    flagged = srm_p_values(_misassigned(rng, runs, 10_000, 0.04), [0.5, 0.5]) < 0.001
    false_alarms = srm_p_values(_misassigned(rng, runs, 10_000, 0.0), [0.5, 0.5]) < 0.001
    assert flagged.mean() >= 0.99
    assert false_alarms.mean() <= 0.002


def test_a_one_percent_assignment_bug_on_10000_units_per_arm_is_below_what_a_count_can_show():
    # 1% of B's units landing in A moves 100 of 20,000 units: 1.4 standard deviations of B's count
    # (sqrt(20,000 x 0.25) = 71), so no test at a 0.1% false-alarm rate can flag it reliably; the check sees
    # it in a few percent of runs. It takes about 160,000 units per arm (docs/experiments.md).
    rng = np.random.default_rng(31)
    flagged = srm_p_values(_misassigned(rng, 20_000, 10_000, 0.01), [0.5, 0.5]) < 0.001
    assert flagged.mean() < 0.05
    flagged = srm_p_values(_misassigned(rng, 2_000, 160_000, 0.01), [0.5, 0.5]) < 0.001
    assert flagged.mean() >= 0.98
