"""An experiment's results, read from its snapshots: the latest day's analysis, the decision in words, and
the goal's lift with its interval on each day (the chart of the results page).

A metric enters the analysis only when every variant has estimates for it (at least two units, a non-zero
denominator, some variance) and the control's is not zero (the lift divides by it); the others are listed as
waiting for data.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

from experiments.analysis import Analysis, analyse
from experiments.catalog import METRICS
from experiments.metrics import Guardrail, Metric, estimates
from experiments.models import Experiment, StatsSnapshot, Variant
from experiments.stats import VariantStats
from experiments.words import describe

ExperimentStats = dict[str, dict[str, VariantStats]]


@dataclass(frozen=True)
class LiftPoint:
    day: dt.date
    variant: str
    lift: float
    low: float
    high: float


@dataclass
class Results:
    experiment: Experiment
    control: str
    weights: dict[str, float]
    day: dt.date | None = None
    units: dict[str, int] = field(default_factory=dict)
    analysis: Analysis | None = None
    sentences: list[str] = field(default_factory=list)
    srm_warning: bool = False
    waiting: list[str] = field(default_factory=list)  # metric keys without enough data yet
    series: list[LiftPoint] = field(default_factory=list)


def _usable(metric: Metric, stats: ExperimentStats, control: str) -> bool:
    try:
        by_metric = {v: s[metric.key] for v, s in stats.items()}
    except KeyError:
        return False
    if any(float(s.n) < 2 for s in by_metric.values()):
        return False
    by_variant, _ = estimates(metric, by_metric)
    values = [(float(e.value), float(e.variance)) for e in by_variant.values()]
    # The lift divides by the control's value.
    return (all(math.isfinite(v) and math.isfinite(var) for v, var in values)
            and sum(var for _, var in values) > 0 and float(by_variant[control].value) != 0)


def _analyse(experiment: Experiment, stats: ExperimentStats, control: str, weights: dict[str, float]
             ) -> tuple[Analysis | None, list[str]]:
    goal = METRICS[experiment.goal]
    if not _usable(goal, stats, control):
        return None, [experiment.goal]
    secondary = [METRICS[k] for k in experiment.secondary if k in METRICS]
    guardrails = [Guardrail(METRICS[g["metric"]], g["margin"]) for g in experiment.guardrails if g["metric"] in METRICS]
    waiting = [m.key for m in secondary if not _usable(m, stats, control)]
    waiting += [g.metric.key for g in guardrails
                if not _usable(g.metric, stats, control) and g.metric.key not in waiting]
    analysis = analyse(stats, control=control, weights=weights, goal=goal,
                       planned_n=float(experiment.planned_units),
                       secondary=[m for m in secondary if m.key not in waiting],
                       guardrails=[g for g in guardrails if g.metric.key not in waiting])
    return analysis, waiting


def experiment_results(experiment: Experiment) -> Results:
    variants = list(Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment))
    control = variants[0].name
    weights = {v.name: v.weight for v in variants}
    results = Results(experiment, control, weights)
    by_day: dict[dt.date, ExperimentStats] = defaultdict(dict)
    units: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for snap in StatsSnapshot.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment):
        if snap.variant in weights:
            by_day[snap.day][snap.variant] = {k: VariantStats(**v) for k, v in snap.stats.items()}
            units[snap.day][snap.variant] = snap.units
    for day in sorted(by_day):
        if set(by_day[day]) != set(weights):
            continue
        analysis, waiting = _analyse(experiment, by_day[day], control, weights)
        results.day, results.units, results.analysis, results.waiting = day, units[day], analysis, waiting
        if analysis is None:
            continue
        for variant in analysis.treatments:
            effect = analysis.result(variant, experiment.goal).effect
            interval = analysis.lift_interval(effect)
            results.series.append(LiftPoint(day, variant, float(effect.lift), float(interval.low),
                                            float(interval.high)))
    if results.analysis is not None:
        results.sentences = describe(results.analysis)
        results.srm_warning = bool(results.analysis.srm.mismatch)
    return results


def as_json(results: Results) -> dict:
    """The API's results document."""
    analysis = results.analysis
    doc: dict = {
        "as_of": results.day, "control": results.control, "weights": results.weights, "units": results.units,
        "waiting_for_data": results.waiting, "decision": results.sentences, "srm": None, "metrics": [],
        "guardrails": [],
        "goal_over_time": [{"day": p.day, "variant": p.variant, "lift": p.lift, "low": p.low, "high": p.high}
                           for p in results.series],
    }
    if analysis is None:
        return doc
    doc["sequential"] = analysis.sequential
    doc["srm"] = {"p_value": float(analysis.srm.p_value), "mismatch": bool(analysis.srm.mismatch)}
    for r in analysis.results:
        interval = analysis.lift_interval(r.effect)
        doc["metrics"].append({
            "variant": r.variant, "metric": r.metric.key, "goal": r.goal, "lift": float(r.effect.lift),
            "low": float(interval.low), "high": float(interval.high), "p_value": analysis.p_value(r.effect),
            "p_adjusted": float(r.p_adjusted), "significant": bool(r.significant),
        })
    for g in analysis.guardrails:
        interval = analysis.lift_interval(g.effect)
        doc["guardrails"].append({
            "variant": g.variant, "metric": g.guardrail.metric.key, "margin": g.guardrail.margin,
            "lift": float(g.effect.lift), "low": float(interval.low), "high": float(interval.high),
            "status": g.check.status,
        })
    return doc
