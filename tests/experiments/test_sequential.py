"""The always-valid test: its boundary, its p-value, and its error rate under continuous monitoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from experiments.compare import compare
from experiments.sequential import always_valid_p_value, boundary_z, mixture_ratio
from experiments.stats import VariantStats, mean_estimate


def test_the_p_value_crosses_alpha_exactly_at_the_boundary():
    for n in (100.0, 5_000.0, 40_000.0, 1e6):
        z = boundary_z(n, planned_n=40_000, alpha=0.05)
        assert always_valid_p_value(z, n, 40_000, 0.05) == pytest.approx(0.05, rel=1e-9)
        assert always_valid_p_value(z * 0.99, n, 40_000, 0.05) > 0.05


def test_the_boundary_is_tightest_near_the_planned_size_and_always_above_the_fixed_one():
    sizes = np.geomspace(1_000, 1_000_000, 200)
    z = boundary_z(sizes, 40_000, 0.05)
    assert np.all(z > sps.norm.ppf(0.975))
    # The multiplier is smallest around the planned size...
    assert 10_000 < sizes[np.argmin(z)] < 200_000
    # ...and the interval (z* x se, se ~ 1 / sqrt(n)) still narrows as units come in.
    assert np.all(np.diff(z / np.sqrt(sizes)) < 0)


def test_the_mixture_is_tuned_by_the_plan_not_by_the_data():
    assert mixture_ratio(20_000, 40_000, 0.05) == pytest.approx(mixture_ratio(40_000, 40_000, 0.05) / 2)
    with pytest.raises(ValueError):
        mixture_ratio(10, 0, 0.05)


def test_looking_every_day_keeps_the_false_positive_rate_below_alpha_while_the_fixed_test_does_not():
    rng = np.random.default_rng(20)
    experiments, days, per_day = 2000, 20, 200
    ever_sequential = np.zeros(experiments, dtype=bool)
    ever_fixed = np.zeros(experiments, dtype=bool)
    totals = [VariantStats(), VariantStats()]
    for _ in range(days):
        # One day's skewed rows per arm and experiment, added to the running statistics.
        y = rng.exponential(1.0, size=(2, per_day, experiments))
        totals = [totals[k].merge(VariantStats(n=np.full(experiments, float(per_day)), sum_y=y[k].sum(axis=0),
                                               sum_y2=(y[k] ** 2).sum(axis=0))) for k in range(2)]
        effect = compare(mean_estimate(totals[0]), mean_estimate(totals[1]), planned_n=2 * days * per_day)
        ever_sequential |= effect.p_value_sequential <= 0.05
        ever_fixed |= effect.p_value <= 0.05
    assert ever_sequential.mean() <= 0.05
    # Peeking at the fixed-horizon test twenty times finds a "winner" in far more than 5% of A/A tests.
    assert ever_fixed.mean() > 0.15
