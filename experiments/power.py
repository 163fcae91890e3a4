"""Planning: the minimum detectable effect for a sample size, or the sample size for an effect.

The fixed-horizon figures come from statsmodels' NormalIndPower on the standardised effect
d = delta / sd (two-sided z test, unequal arms through `ratio`). The per-unit standard deviation is read
from a baseline estimate (a pre-period's statistics): sqrt(n Var(estimate)), which for a ratio metric is
the delta method's. CUPED shrinks the variance by its reduction (rho^2 of the covariate). The sequential
figure is the effect the always-valid test detects with the same power when it looks at the planned size:
(z*(planned) + z_power) x se, with z* the mixture boundary tuned at that size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def minimum_detectable_effect(baseline: Estimate, n_per_arm: float, alpha: float = 0.05, power: float = 0.8,
                              variance_reduction: float = 0.0, ratio: float = 1.0) -> PowerPlan:
    """The smallest true effect detected with `power`, with n_per_arm units in the control and
    ratio x n_per_arm in the treatment."""
    _check(alpha, power, variance_reduction)
    sd = unit_sd(baseline) * math.sqrt(1 - variance_reduction)
    d = NormalIndPower().solve_power(effect_size=None, nobs1=n_per_arm, alpha=alpha, power=power, ratio=ratio)
    absolute = float(d) * sd
    se = sd * math.sqrt(1 / n_per_arm + 1 / (ratio * n_per_arm))
    total = n_per_arm * (1 + ratio)
    sequential = (boundary_z(total, total, alpha) + sps.norm.ppf(power)) * se
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
