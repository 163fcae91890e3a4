"""One experiment's analysis from its variants' sufficient statistics: what a results page shows.

Every treatment is compared with the control on the goal and the secondary metrics; their p-values (the
always-valid ones when `sequential`) are corrected together with Holm or Benjamini-Hochberg across metrics
and variants. Guardrails are non-inferiority tests at alpha each, outside the correction (a guardrail
protects, it does not pick a winner). The sample-ratio check counts the units of the goal metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from experiments.compare import Effect, Interval, compare
from experiments.guardrails import GuardrailCheck, non_inferiority
from experiments.metrics import Guardrail, Metric, estimates
from experiments.multiple import Correction, adjust_p_values
from experiments.srm import SampleRatioCheck, sample_ratio_check
from experiments.stats import VariantStats

# variant -> metric key -> statistics
ExperimentStats = Mapping[str, Mapping[str, VariantStats]]


@dataclass(frozen=True)
class MetricResult:
    variant: str
    metric: Metric
    goal: bool
    effect: Effect
    p_adjusted: float
    significant: bool
    # CUPED's theta, when the metric is adjusted.
    theta: float | None


@dataclass(frozen=True)
class GuardrailResult:
    variant: str
    guardrail: Guardrail
    effect: Effect
    check: GuardrailCheck


@dataclass(frozen=True)
class Analysis:
    control: str
    treatments: tuple[str, ...]
    alpha: float
    correction: Correction
    sequential: bool
    srm: SampleRatioCheck
    results: tuple[MetricResult, ...]
    guardrails: tuple[GuardrailResult, ...]

    def result(self, variant: str, metric_key: str) -> MetricResult:
        return next(r for r in self.results if r.variant == variant and r.metric.key == metric_key)

    def lift_interval(self, effect: Effect) -> Interval:
        """The interval the page shows: the confidence sequence when the analysis is sequential."""
        return effect.lift_cs if self.sequential else effect.lift_ci

    def p_value(self, effect: Effect) -> float:
        return float(effect.p_value_sequential if self.sequential else effect.p_value)


def _metric_stats(stats: ExperimentStats, metric: Metric) -> dict[str, VariantStats]:
    try:
        return {variant: by_metric[metric.key] for variant, by_metric in stats.items()}
    except KeyError as missing:
        raise ValueError(f"no statistics for metric {metric.key!r} in every variant") from missing


def analyse(stats: ExperimentStats, *, control: str, weights: Mapping[str, float], goal: Metric,
            planned_n: float, secondary: Sequence[Metric] = (), guardrails: Sequence[Guardrail] = (),
            alpha: float = 0.05, correction: Correction = "holm", sequential: bool = True) -> Analysis:
    """planned_n: the units the experiment plans to enrol in all its variants (the power calculator's
    answer), fixed at its start; it tunes the always-valid test."""
    if control not in stats:
        raise ValueError(f"no statistics for the control {control!r}")
    treatments = tuple(name for name in stats if name != control)
    compared: list[tuple[str, Metric, bool, Effect, float | None]] = []
    for metric in (goal, *secondary):
        by_variant, theta = estimates(metric, _metric_stats(stats, metric))
        for variant in treatments:
            effect = compare(by_variant[control], by_variant[variant], planned_n, alpha)
            compared.append((variant, metric, metric is goal, effect, theta))
    raw = [float(e.p_value_sequential if sequential else e.p_value) for _, _, _, e, _ in compared]
    adjusted, reject = adjust_p_values(raw, correction, alpha)
    results = tuple(MetricResult(variant, metric, is_goal, effect, p, significant, theta)
                    for (variant, metric, is_goal, effect, theta), p, significant in zip(compared, adjusted, reject,
                                                                                          strict=True))
    checks = []
    for guardrail in guardrails:
        by_variant, _ = estimates(guardrail.metric, _metric_stats(stats, guardrail.metric))
        for variant in treatments:
            effect = compare(by_variant[control], by_variant[variant], planned_n, alpha)
            check = non_inferiority(effect, guardrail.margin, guardrail.metric.higher_is_better, sequential)
            checks.append(GuardrailResult(variant, guardrail, effect, check))
    units = {variant: float(by_metric[goal.key].n) for variant, by_metric in stats.items()}
    return Analysis(control=control, treatments=treatments, alpha=alpha, correction=correction,
                    sequential=sequential, srm=sample_ratio_check(units, weights), results=results,
                    guardrails=tuple(checks))
