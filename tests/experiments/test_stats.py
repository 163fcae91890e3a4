"""Sufficient statistics against direct computations on the raw rows they summarise."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.stats import (
    VariantStats,
    covariate_mean,
    cuped_estimate,
    cuped_theta,
    mean_estimate,
    merge_all,
    ratio_estimate,
)


def _users(rng: np.random.Generator, n: int, lift: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Revenue per user (zero-inflated, heavy-tailed), recommendations per user, pre-period revenue."""
    recommendations = 1 + rng.poisson(4, n)
    taste = rng.lognormal(0, 0.8, n)
    pre = rng.poisson(0.3 * taste) * rng.lognormal(3, 0.7, n)
    revenue = rng.poisson(0.3 * taste * lift) * rng.lognormal(3, 0.7, n)
    return revenue, recommendations.astype(float), pre


def test_batches_merge_to_the_statistics_of_all_rows():
    rng = np.random.default_rng(1)
    y, d, x = _users(rng, 3000)
    batches = [VariantStats.from_rows(y[i:i + 1000], d[i:i + 1000], x[i:i + 1000]) for i in range(0, 3000, 1000)]
    merged, whole = merge_all(batches).as_dict(), VariantStats.from_rows(y, d, x).as_dict()
    assert merged == pytest.approx(whole, rel=1e-12)


def test_mean_and_its_variance_equal_numpy_on_the_rows():
    rng = np.random.default_rng(2)
    y, _, _ = _users(rng, 5000)
    estimate = mean_estimate(VariantStats.from_rows(y))
    assert estimate.value == pytest.approx(y.mean(), rel=1e-12)
    assert estimate.variance == pytest.approx(y.var(ddof=1) / y.size, rel=1e-9)


def test_ratio_variance_from_the_delta_method_matches_a_bootstrap():
    rng = np.random.default_rng(3)
    y, d, _ = _users(rng, 4000)
    estimate = ratio_estimate(VariantStats.from_rows(y, d))
    assert estimate.value == pytest.approx(y.sum() / d.sum(), rel=1e-12)
    boot = np.random.default_rng(4)
    ratios = []
    for _ in range(2000):
        i = boot.integers(0, y.size, y.size)
        ratios.append(y[i].sum() / d[i].sum())
    # 2,000 resamples estimate a variance to about 3% (sd of a sample variance: sqrt(2 / 2000)).
    assert estimate.variance == pytest.approx(np.var(ratios, ddof=1), rel=0.10)


def test_cuped_equals_the_regression_adjusted_means_on_the_rows():
    rng = np.random.default_rng(5)
    arms = [_users(rng, 3000), _users(rng, 3500, lift=1.1), _users(rng, 2500, lift=0.95)]
    stats = [VariantStats.from_rows(y, covariate=x) for y, _, x in arms]
    theta, x_mean = cuped_theta(stats), covariate_mean(stats)

    # y ~ one intercept per arm + theta (x - mean x), by least squares on all rows.
    y = np.concatenate([a[0] for a in arms])
    x = np.concatenate([a[2] for a in arms])
    arm = np.repeat(np.arange(3), [a[0].size for a in arms])
    design = np.column_stack([(arm == k).astype(float) for k in range(3)] + [x - x.mean()])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)

    assert theta == pytest.approx(coef[3], rel=1e-9)
    for k, s in enumerate(stats):
        estimate = cuped_estimate(s, theta, x_mean)
        assert estimate.value == pytest.approx(coef[k], rel=1e-9)
        yk, xk = arms[k][0], arms[k][2]
        assert estimate.variance == pytest.approx(np.var(yk - theta * xk, ddof=1) / yk.size, rel=1e-9)
        # The covariate carries information: the adjusted mean is tighter than the plain one.
        assert estimate.variance < mean_estimate(s).variance


def test_cuped_without_a_covariate_changes_nothing():
    rng = np.random.default_rng(6)
    y, _, _ = _users(rng, 1000)
    s = VariantStats.from_rows(y)
    theta = cuped_theta([s])
    assert theta == 0.0
    assert cuped_estimate(s, theta, covariate_mean([s])) == mean_estimate(s)


def test_statistics_of_many_experiments_at_once_are_element_wise():
    rng = np.random.default_rng(7)
    rows = [_users(rng, 500) for _ in range(4)]
    one_by_one = [ratio_estimate(VariantStats.from_rows(y, d)) for y, d, _ in rows]
    stacked = VariantStats(**{f: np.array([VariantStats.from_rows(y, d).as_dict()[f] for y, d, _ in rows])
                              for f in VariantStats().as_dict()})
    together = ratio_estimate(stacked)
    assert together.value == pytest.approx([e.value for e in one_by_one], rel=1e-12)
    assert together.variance == pytest.approx([e.variance for e in one_by_one], rel=1e-9)


def test_an_empty_variant_has_no_estimate_rather_than_an_error():
    estimate = mean_estimate(VariantStats())
    assert np.isnan(estimate.value) and np.isnan(estimate.variance)
