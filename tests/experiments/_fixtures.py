"""Statistics built to give chosen estimates exactly, so that the tests can state the exact outcome."""

from __future__ import annotations

from experiments.stats import VariantStats


def stats_with(mean: float, unit_variance: float, n: float) -> VariantStats:
    """n units with this mean and unit variance (ddof 1); for a ratio metric every unit has denominator 1,
    so the ratio is the same mean with the same variance."""
    sum_y = n * mean
    return VariantStats(n=n, sum_y=sum_y, sum_y2=(n - 1) * unit_variance + n * mean**2, sum_d=n, sum_d2=n,
                        sum_yd=sum_y)
