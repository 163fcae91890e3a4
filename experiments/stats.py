"""Per-variant sufficient statistics and the estimates they give.

Every field of `VariantStats` is a sum over the randomisation units (customers or sessions) of one variant,
so a periodic worker adds each batch of rows to the running sums with `merge`, and the analysis reads only
the sums. Which fields a metric fills:

- a mean metric (conversion, revenue per user): `n`, `sum_y`, `sum_y2`;
- a ratio metric (clicks per impression, revenue per recommendation), whose unit is not the randomisation
  unit: the numerator in `sum_y`, `sum_y2`, the denominator in `sum_d`, `sum_d2` and their cross-product
  `sum_yd`, for the delta method;
- CUPED on a mean metric: the pre-period covariate in `sum_x`, `sum_x2` and its cross-product `sum_xy`.

The fields may hold numpy arrays of one shape instead of floats: the formulas are element-wise, which is how
tests/bench/experiments.py analyses 10,000 simulated experiments at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

Value: TypeAlias = float | NDArray[np.float64]


@dataclass(frozen=True)
class VariantStats:
    n: Value = 0.0
    sum_y: Value = 0.0
    sum_y2: Value = 0.0
    sum_d: Value = 0.0
    sum_d2: Value = 0.0
    sum_yd: Value = 0.0
    sum_x: Value = 0.0
    sum_x2: Value = 0.0
    sum_xy: Value = 0.0

    def merge(self, other: VariantStats) -> VariantStats:
        """The statistics of both batches' units together (a unit must not appear in both)."""
        return VariantStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @classmethod
    def from_rows(cls, y: ArrayLike, denominator: ArrayLike | None = None,
                  covariate: ArrayLike | None = None) -> VariantStats:
        """The statistics of one row per unit: its metric value (or numerator), its denominator, its
        pre-period covariate."""
        y = np.asarray(y, dtype=np.float64)
        d = np.zeros_like(y) if denominator is None else np.asarray(denominator, dtype=np.float64)
        x = np.zeros_like(y) if covariate is None else np.asarray(covariate, dtype=np.float64)
        return cls(n=float(y.size), sum_y=float(y.sum()), sum_y2=float(y @ y), sum_d=float(d.sum()),
                   sum_d2=float(d @ d), sum_yd=float(y @ d), sum_x=float(x.sum()), sum_x2=float(x @ x),
                   sum_xy=float(x @ y))

    def as_dict(self) -> dict[str, float]:
        """Plain floats, for a JSON column (scalar statistics only)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def merge_all(batches: Iterable[VariantStats]) -> VariantStats:
    total = VariantStats()
    for batch in batches:
        total = total.merge(batch)
    return total


@dataclass(frozen=True)
class Estimate:
    """A variant's estimate of a metric, the variance of that estimate, and the units behind it."""

    value: Value
    variance: Value
    n: Value

    def scaled(self, factor: float) -> Estimate:
        """The same estimate in other units (revenue per 1,000 recommendations: factor 1,000)."""
        return Estimate(self.value * factor, self.variance * factor**2, self.n)


def _div(a: Value, b: Value) -> Value:
    # Zero units give NaN, not an exception: an empty variant has no estimate, and array statistics carry
    # such experiments along without a branch.
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(a, b)
    return float(out) if np.ndim(out) == 0 else out


def _centred(sum_a: Value, sum_b: Value, sum_ab: Value, n: Value) -> Value:
    """sum((a - mean a)(b - mean b)) from the raw sums."""
    return sum_ab - _div(sum_a * sum_b, n)


def mean_estimate(s: VariantStats) -> Estimate:
    """The mean of y per unit; the variance of that mean is the unit variance (ddof 1) over n."""
    unit_variance = _div(_centred(s.sum_y, s.sum_y, s.sum_y2, s.n), s.n - 1)
    return Estimate(_div(s.sum_y, s.n), _div(unit_variance, s.n), s.n)


def ratio_estimate(s: VariantStats) -> Estimate:
    """sum(y) / sum(d), with the delta-method variance for units that each carry a y and a d:

        Var(R) ~ (Var(y) - 2 R Cov(y, d) + R^2 Var(d)) / (n * mean(d)^2)

    (Deng, Knoblich & Lu 2018, "Applying the delta method in metric analytics").
    """
    ratio = _div(s.sum_y, s.sum_d)
    var_y = _div(_centred(s.sum_y, s.sum_y, s.sum_y2, s.n), s.n - 1)
    var_d = _div(_centred(s.sum_d, s.sum_d, s.sum_d2, s.n), s.n - 1)
    cov_yd = _div(_centred(s.sum_y, s.sum_d, s.sum_yd, s.n), s.n - 1)
    mean_d = _div(s.sum_d, s.n)
    variance = _div(var_y - 2 * ratio * cov_yd + ratio**2 * var_d, s.n * mean_d**2)
    return Estimate(ratio, variance, s.n)


def cuped_theta(variants: Iterable[VariantStats]) -> Value:
    """theta = Cov(y, x) / Var(x), pooled within the variants (each variant centred on its own means).

    Pooling within variants is what the regression y ~ variant + x estimates, and a treatment effect on y
    does not leak into theta the way it would if the variants were lumped together (Deng et al. 2013).
    """
    s_xy: Value = 0.0
    s_xx: Value = 0.0
    for s in variants:
        s_xy = s_xy + _centred(s.sum_x, s.sum_y, s.sum_xy, s.n)
        s_xx = s_xx + _centred(s.sum_x, s.sum_x, s.sum_x2, s.n)
    # A covariate without variance (no pre-period data yet) adjusts nothing.
    theta = np.nan_to_num(_div(s_xy, s_xx), nan=0.0, posinf=0.0, neginf=0.0)
    return float(theta) if np.ndim(theta) == 0 else theta


def covariate_mean(variants: Iterable[VariantStats]) -> Value:
    """The covariate's mean over all the variants' units, the point each variant's mean is moved to."""
    variants = list(variants)
    return _div(sum(s.sum_x for s in variants), sum(s.n for s in variants))


def cuped_estimate(s: VariantStats, theta: Value, x_mean: Value) -> Estimate:
    """CUPED (Deng, Xu, Kohavi & Walker 2013): the mean of y - theta (x - x_mean) per unit.

    Its variance is the unit variance of y - theta x over n: Var(y) - 2 theta Cov(y, x) + theta^2 Var(x),
    which is Var(y) (1 - rho^2) at the optimal theta.
    """
    value = _div(s.sum_y, s.n) - theta * (_div(s.sum_x, s.n) - x_mean)
    s_yy = _centred(s.sum_y, s.sum_y, s.sum_y2, s.n)
    s_xy = _centred(s.sum_x, s.sum_y, s.sum_xy, s.n)
    s_xx = _centred(s.sum_x, s.sum_x, s.sum_x2, s.n)
    unit_variance = _div(s_yy - 2 * theta * s_xy + theta**2 * s_xx, s.n - 1)
    return Estimate(value, _div(unit_variance, s.n), s.n)
