"""The metrics an experiment can name: those the attribution statistics fill today
(recs.attribution.stats.AttributedSums.metric_stats). Latency and error rate need per-answer timings the
served answers do not carry yet, so they are not offered."""

from __future__ import annotations

from experiments.metrics import CLICK_THROUGH, CONVERSION, EMPTY_ANSWERS, REVENUE_PER_1000, Metric

METRICS: dict[str, Metric] = {m.key: m for m in (REVENUE_PER_1000, CLICK_THROUGH, CONVERSION, EMPTY_ANSWERS)}
# What a variant may win on; empty answers only protects.
GOAL_METRICS = (REVENUE_PER_1000.key, CLICK_THROUGH.key, CONVERSION.key)
GUARDRAIL_METRICS = tuple(METRICS)
