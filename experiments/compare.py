"""A treatment against the control: the difference, the relative lift, their intervals and p-values.

Each comes twice: the fixed-horizon test (Welch's t, valid at one look decided in advance) and the
always-valid one (`experiments.sequential`, valid at every look). The relative lift's variance is the
delta method's for a quotient of independent estimates:

    lift = T / C - 1,   Var(lift) ~ Var(T) / C^2 + T^2 Var(C) / C^4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from experiments.sequential import always_valid_p_value, boundary_z
from experiments.stats import Estimate, Value


@dataclass(frozen=True)
class Interval:
    low: Value
    high: Value

    def excludes(self, value: float = 0.0) -> Value:
        return (self.low > value) | (self.high < value)


@dataclass(frozen=True)
class Effect:
    control: Estimate
    treatment: Estimate
    alpha: float
    planned_n: float
    difference: Value
    difference_se: Value
    lift: Value
    lift_se: Value
    # Fixed horizon: Welch's t with Welch-Satterthwaite degrees of freedom.
    df: Value
    t_critical: Value
    p_value: Value
    difference_ci: Interval
    lift_ci: Interval
    # Always valid: the normal-mixture confidence sequence at the units seen so far.
    z_boundary: Value
    p_value_sequential: Value
    difference_cs: Interval
    lift_cs: Interval


def _scalar(x: Value) -> Value:
    return float(x) if np.ndim(x) == 0 else x


def compare(control: Estimate, treatment: Estimate, planned_n: float, alpha: float = 0.05) -> Effect:
    """Treatment minus control at level alpha; planned_n (units in both variants) tunes the sequential test."""
    difference = treatment.value - control.value
    with np.errstate(divide="ignore", invalid="ignore"):
        difference_se = np.sqrt(treatment.variance + control.variance)
        lift = treatment.value / control.value - 1
        lift_se = np.sqrt(treatment.variance / control.value**2
                          + treatment.value**2 * control.variance / control.value**4)
        df = (treatment.variance + control.variance) ** 2 / (
            treatment.variance**2 / (treatment.n - 1) + control.variance**2 / (control.n - 1))
        t_stat = difference / difference_se
    t_critical = sps.t.ppf(1 - alpha / 2, df)
    p_value = 2 * sps.t.sf(np.abs(t_stat), df)
    n = treatment.n + control.n
    z_boundary = boundary_z(n, planned_n, alpha)
    p_sequential = always_valid_p_value(t_stat, n, planned_n, alpha)
    return Effect(
        control=control, treatment=treatment, alpha=alpha, planned_n=planned_n,
        difference=_scalar(difference), difference_se=_scalar(difference_se),
        lift=_scalar(lift), lift_se=_scalar(lift_se),
        df=_scalar(df), t_critical=_scalar(t_critical), p_value=_scalar(p_value),
        difference_ci=Interval(_scalar(difference - t_critical * difference_se),
                               _scalar(difference + t_critical * difference_se)),
        lift_ci=Interval(_scalar(lift - t_critical * lift_se), _scalar(lift + t_critical * lift_se)),
        z_boundary=z_boundary, p_value_sequential=_scalar(p_sequential),
        difference_cs=Interval(_scalar(difference - z_boundary * difference_se),
                               _scalar(difference + z_boundary * difference_se)),
        lift_cs=Interval(_scalar(lift - z_boundary * lift_se), _scalar(lift + z_boundary * lift_se)),
    )
