"""Differences, lifts and their tests against scipy on the raw rows, and the lift's variance against a
bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from experiments.compare import compare
from experiments.stats import VariantStats, mean_estimate, ratio_estimate


def _arm(rng, n, rate):
    recommendations = (1 + rng.poisson(4, n)).astype(float)
    revenue = rng.binomial(recommendations.astype(int), rate) * rng.lognormal(3, 1, n)
    return revenue, recommendations


def test_fixed_horizon_test_is_welchs_t_test_on_the_rows():
    rng = np.random.default_rng(10)
    a, _ = _arm(rng, 3000, 0.03)
    b, _ = _arm(rng, 2500, 0.034)
    effect = compare(mean_estimate(VariantStats.from_rows(a)), mean_estimate(VariantStats.from_rows(b)),
                     planned_n=5500)
    welch = sps.ttest_ind(b, a, equal_var=False)
    assert effect.difference == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert effect.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    ci = welch.confidence_interval(0.95)
    assert (effect.difference_ci.low, effect.difference_ci.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_relative_lift_variance_of_a_ratio_metric_matches_a_bootstrap():
    rng = np.random.default_rng(11)
    ya, da = _arm(rng, 4000, 0.03)
    yb, db = _arm(rng, 4000, 0.033)
    effect = compare(ratio_estimate(VariantStats.from_rows(ya, da)), ratio_estimate(VariantStats.from_rows(yb, db)),
                     planned_n=8000)
    assert effect.lift == pytest.approx((yb.sum() / db.sum()) / (ya.sum() / da.sum()) - 1, rel=1e-12)
    boot = np.random.default_rng(12)
    lifts = []
    for _ in range(2000):
        i, j = boot.integers(0, ya.size, ya.size), boot.integers(0, yb.size, yb.size)
        lifts.append((yb[j].sum() / db[j].sum()) / (ya[i].sum() / da[i].sum()) - 1)
    assert effect.lift_se**2 == pytest.approx(np.var(lifts, ddof=1), rel=0.10)


def test_the_confidence_sequence_is_wider_than_the_fixed_interval_and_agrees_with_its_p_value():
    rng = np.random.default_rng(13)
    a, _ = _arm(rng, 20000, 0.03)
    b, _ = _arm(rng, 20000, 0.033)
    effect = compare(mean_estimate(VariantStats.from_rows(a)), mean_estimate(VariantStats.from_rows(b)),
                     planned_n=40000)
    assert effect.difference_cs.low < effect.difference_ci.low < effect.difference_ci.high < effect.difference_cs.high
    assert effect.lift_cs.low < effect.lift_ci.low
    assert bool(effect.difference_cs.excludes(0.0)) == (effect.p_value_sequential <= 0.05)
