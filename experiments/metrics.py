"""What an experiment measures: a metric's kind, its units, and which way is better.

The randomisation unit is the customer (or the anonymous session). A mean metric has one value per unit;
a ratio metric divides two per-unit sums whose denominator is not the unit (impressions, answers), so its
variance needs the delta method. `estimates` turns each variant's sufficient statistics into estimates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from experiments.stats import (
    Estimate,
    VariantStats,
    covariate_mean,
    cuped_estimate,
    cuped_theta,
    mean_estimate,
    ratio_estimate,
)


@dataclass(frozen=True)
class Metric:
    key: str
    # In a sentence: "B raises <label> by 4.1%".
    label: str
    kind: Literal["mean", "ratio"] = "mean"
    # Revenue per 1,000 recommendations is revenue / recommendations x 1,000.
    scale: float = 1.0
    higher_is_better: bool = True
    # CUPED with the unit's pre-period value (sum_x, sum_x2, sum_xy filled); mean metrics only.
    cuped: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "ratio"):
            raise ValueError(f"metric kind must be mean or ratio, not {self.kind!r}")
        if self.cuped and self.kind != "mean":
            raise ValueError("CUPED is implemented for mean metrics only")


@dataclass(frozen=True)
class Guardrail:
    """A metric the treatment must not worsen by more than `margin`, relative to the control (0.05: 5%)."""

    metric: Metric
    margin: float

    def __post_init__(self) -> None:
        if not self.margin > 0:
            raise ValueError("a guardrail's margin must be positive")


# The metrics. Numerator (y) and denominator (d) per unit:
# click-through: clicks / impressions.
CLICK_THROUGH = Metric("click_through", "click-through", kind="ratio")
# conversion: 1 when the unit bought after a recommendation, else 0; pre-period: the same over the weeks before.
CONVERSION = Metric("conversion", "conversion", cuped=True)
# revenue per 1,000 recommendations: attributed revenue / answers served x 1,000.
REVENUE_PER_1000 = Metric("revenue_per_1000", "revenue per 1,000 recommendations", kind="ratio", scale=1000.0)
# Guardrails, per answer served: milliseconds, errors, answers without items.
LATENCY = Metric("latency_ms", "latency", kind="ratio", higher_is_better=False)
ERROR_RATE = Metric("error_rate", "error rate", kind="ratio", higher_is_better=False)
EMPTY_ANSWERS = Metric("empty_answers", "empty answers", kind="ratio", higher_is_better=False)


def estimates(metric: Metric, stats: Mapping[str, VariantStats]) -> tuple[dict[str, Estimate], float | None]:
    """Each variant's estimate of the metric, and CUPED's theta when it applies (pooled over the variants)."""
    theta = None
    if metric.kind == "ratio":
        raw = {name: ratio_estimate(s) for name, s in stats.items()}
    elif metric.cuped:
        theta = cuped_theta(stats.values())
        x_mean = covariate_mean(stats.values())
        raw = {name: cuped_estimate(s, theta, x_mean) for name, s in stats.items()}
    else:
        raw = {name: mean_estimate(s) for name, s in stats.items()}
    return {name: e.scaled(metric.scale) for name, e in raw.items()}, theta
