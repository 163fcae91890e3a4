"""Guardrails as non-inferiority tests: the treatment may not worsen a metric by more than a margin.

On the relative lift, turned so that positive means worse (w = lift for lower-is-better metrics such as
latency, -lift otherwise), the null hypothesis "w >= margin" is rejected when the upper bound of w lies
below the margin; the guardrail then holds. A guardrail is harmed when w is significantly above zero and
not shown within its margin; otherwise it is not decided yet. The bounds are one-sided Welch t at the
fixed horizon; the always-valid ones reuse the two-sided confidence sequence at alpha, which is valid (if
conservative) for one side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from experiments.compare import Effect, Interval
from experiments.sequential import always_valid_p_value

Status = Literal["within_margin", "harmed", "inconclusive"]


@dataclass(frozen=True)
class GuardrailCheck:
    # Relative worsening and its interval (positive = worse).
    worsening: float
    interval: Interval
    margin: float
    # Non-inferiority p-value: small when the worsening is surely below the margin.
    p_value: float
    status: Status


def non_inferiority(effect: Effect, margin: float, higher_is_better: bool, sequential: bool) -> GuardrailCheck:
    worsening = -effect.lift if higher_is_better else effect.lift
    se = effect.lift_se
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (worsening - margin) / se
    if sequential:
        multiplier = effect.z_boundary
        n = effect.control.n + effect.treatment.n
        p_value = always_valid_p_value(z, n, effect.planned_n, effect.alpha) if worsening < margin else 1.0
    else:
        multiplier = sps.t.ppf(1 - effect.alpha, effect.df)
        p_value = sps.t.cdf(z, effect.df)
    low, high = worsening - multiplier * se, worsening + multiplier * se
    if high < margin:
        status: Status = "within_margin"
    elif low > 0:
        status = "harmed"
    else:
        status = "inconclusive"
    return GuardrailCheck(float(worsening), Interval(float(low), float(high)), margin, float(p_value), status)
