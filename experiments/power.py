"""Planning: the minimum detectable effect for a sample size, or the sample size for an effect.

The fixed-horizon figures come from statsmodels' NormalIndPower on the standardised effect
d = delta / sd (two-sided z test, unequal arms through `ratio`). The per-unit standard deviation is read
from a baseline estimate (a pre-period's statistics): sqrt(n Var(estimate)), which for a ratio metric is
the delta method's. CUPED shrinks the variance by its reduction (rho^2 of the covariate). The sequential
figure is the effect the always-valid test detects with the same power when it looks at the planned size:
(z*(planned) + z_power) x se, with z* the mixture boundary tuned at that size; the sample size for an
effect under that test is found by root-finding on it (scipy's brentq).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower

from experiments.sequential import boundary_z
from experiments.stats import Estimate


@dataclass(frozen=True)
class PowerPlan:
    n_per_arm: float
    baseline: float
    unit_sd: float
    mde_absolute: float
    mde_relative: float
    # The same at the planned size, for the always-valid test (which pays for looking at will).
    mde_absolute_sequential: float
    mde_relative_sequential: float
    alpha: float
    power: float
    variance_reduction: float


def unit_sd(baseline: Estimate) -> float:
    return math.sqrt(float(baseline.variance) * float(baseline.n))


def _check(alpha: float, power: float, variance_reduction: float) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must lie between 0 and 1")
    if not 0 <= variance_reduction < 1:
        raise ValueError("variance_reduction must lie in [0, 1)")


def _sequential_mde(sd: float, n_per_arm: float, ratio: float, alpha: float, power: float) -> float:
    """The absolute effect the always-valid test, planned at this size, detects with `power` at this size."""
    se = sd * math.sqrt(1 / n_per_arm + 1 / (ratio * n_per_arm))
    total = n_per_arm * (1 + ratio)
    return float((boundary_z(total, total, alpha) + sps.norm.ppf(power)) * se)


def minimum_detectable_effect(baseline: Estimate, n_per_arm: float, alpha: float = 0.05, power: float = 0.8,
                              variance_reduction: float = 0.0, ratio: float = 1.0) -> PowerPlan:
    """The smallest true effect detected with `power`, with n_per_arm units in the control and
    ratio x n_per_arm in the treatment."""
    _check(alpha, power, variance_reduction)
    sd = unit_sd(baseline) * math.sqrt(1 - variance_reduction)
    d = NormalIndPower().solve_power(effect_size=None, nobs1=n_per_arm, alpha=alpha, power=power, ratio=ratio)
    absolute = float(d) * sd
    sequential = _sequential_mde(sd, n_per_arm, ratio, alpha, power)
    mean = float(baseline.value)
    return PowerPlan(n_per_arm=n_per_arm, baseline=mean, unit_sd=sd, mde_absolute=absolute,
                     mde_relative=absolute / abs(mean), mde_absolute_sequential=float(sequential),
                     mde_relative_sequential=float(sequential) / abs(mean), alpha=alpha, power=power,
                     variance_reduction=variance_reduction)


def sample_size_per_arm(baseline: Estimate, mde_relative: float, alpha: float = 0.05, power: float = 0.8,
                        variance_reduction: float = 0.0, ratio: float = 1.0) -> float:
    """Units in the control (the treatment gets ratio x that) to detect a relative effect of mde_relative
    with the fixed-horizon test."""
    _check(alpha, power, variance_reduction)
    sd = unit_sd(baseline) * math.sqrt(1 - variance_reduction)
    d = abs(mde_relative * float(baseline.value)) / sd
    return float(NormalIndPower().solve_power(effect_size=d, nobs1=None, alpha=alpha, power=power, ratio=ratio))


def sequential_sample_size_per_arm(baseline: Estimate, mde_relative: float, alpha: float = 0.05, power: float = 0.8,
                                   variance_reduction: float = 0.0, ratio: float = 1.0) -> float:
    """Units in the control (the treatment gets ratio x that) for the always-valid test, planned at that size,
    to detect a relative effect of mde_relative: the size whose `mde_relative_sequential` it is."""
    _check(alpha, power, variance_reduction)
    sd = unit_sd(baseline) * math.sqrt(1 - variance_reduction)
    target = abs(mde_relative * float(baseline.value))
    if not target > 0:
        raise ValueError("the effect to detect must not be 0")

    def gap(n: float) -> float:
        return _sequential_mde(sd, n, ratio, alpha, power) - target

    lo, hi = 2.0, 1e12
    if gap(lo) <= 0:
        return lo
    if gap(hi) > 0:
        raise ValueError("no sample size up to 10^12 units detects so small an effect")
    return float(optimize.brentq(gap, lo, hi, rtol=1e-10))
