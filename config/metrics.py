"""Scrape-time metrics read from the database (listed in RECSVC_METRICS_COLLECTORS, core/metrics.py's view
runs them): model versions by status, and the durations of the training runs that ended in the last day.

Read from the database, not counted in the training workers: a worker's process is not the one scraped,
and the figures are the same from every web replica (aggregate with max(), not sum())."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count, F
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from tenants.context import dangerously_all_tenants
from training.registry.models import ModelVersion

TRAINING_BUCKETS_S = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 24 * 3600)
TRAINING_WINDOW = timedelta(days=1)


class ModelVersions:
    def collect(self) -> Iterable[GaugeMetricFamily | HistogramMetricFamily]:
        versions = GaugeMetricFamily(
            "recsvc_model_versions", "Model versions of all shops by status (active: the versions serving).",
            labels=["status"],
        )
        durations = HistogramMetricFamily(
            "recsvc_training_duration_seconds",
            "Start-to-end time of the training runs that ended (ready, active or failed) in the last 24 hours.",
            labels=["outcome"],
        )
        since = timezone.now() - TRAINING_WINDOW
        try:
            with dangerously_all_tenants():
                rows = ModelVersion.objects.dangerously_all_tenants()
                by_status = dict(rows.values_list("status").annotate(n=Count("id")).order_by())
                ended = list(
                    rows.filter(finished_at__gte=since, started_at__isnull=False)
                    .annotate(took=F("finished_at") - F("started_at"))
                    .values_list("status", "took")
                )
        except DatabaseError:
            return  # the database is down: /readyz says so; the scrape keeps the process's own metrics
        for status in ModelVersion.Status.values:
            versions.add_metric([status], float(by_status.get(status, 0)))
        yield versions
        for outcome, statuses in (("succeeded", {"ready", "active", "archived"}), ("failed", {"failed"})):
            seconds = [took.total_seconds() for status, took in ended if status in statuses]
            buckets = [(str(float(b)), float(sum(s <= b for s in seconds))) for b in TRAINING_BUCKETS_S]
            buckets.append(("+Inf", float(len(seconds))))
            durations.add_metric([outcome], buckets, sum_value=sum(seconds))
        yield durations
