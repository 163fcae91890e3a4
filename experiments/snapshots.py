"""Daily snapshots of each variant's sufficient statistics, from recs.attribution.stats.

A snapshot of day D holds the statistics of the answers served from the experiment's start to the end of D
(UTC; to the time of computing for the current day, to the stop for a stopped experiment), with every
unit's answers summed together as one unit: cumulative, so each day's analysis is the experiment seen on
that day, which is what the always-valid test allows. A run recomputes the days from its last snapshot's on
(the last one may have been partial) and writes one row per (variant, day); pages only read these rows.

Only the recommendations endpoint is assigned (similar and popular carry no unit), and the holdout is out
of the analysis.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from experiments.assignment import label
from experiments.models import Experiment, StatsSnapshot, Variant
from experiments.stats import VariantStats
from recs.attribution.stats import attributed_sums
from tenants.context import tenant_context

ENDPOINT = "recommendations"
# CUPED's pre-period: each unit's conversion in the two weeks before the experiment started.
PRE_PERIOD = dt.timedelta(days=14)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def variant_stats(experiment: Experiment, since: dt.datetime, until: dt.datetime
                  ) -> dict[str, tuple[int, dict[str, VariantStats]]]:
    """Per variant name: its units and metric statistics over answers served in [since, until)."""
    sums = attributed_sums(experiment.tenant_id, since, until, pre_period=PRE_PERIOD)
    variants = Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment)
    out = {}
    for v in variants:
        found = sums.get((label(experiment.pk, v.name), ENDPOINT))
        if found is None:
            out[v.name] = (0, {})
        else:
            out[v.name] = (found.units, found.metric_stats())
    return out


def snapshot_experiment(experiment: Experiment, now: dt.datetime | None = None) -> int:
    """Write the experiment's snapshots up to `now`; returns how many rows were written."""
    now = now or timezone.now()
    if experiment.started_at is None:
        return 0
    end = min(now, experiment.stopped_at or now)
    first_day, last_day = experiment.started_at.astimezone(dt.UTC).date(), end.astimezone(dt.UTC).date()
    with tenant_context(experiment.tenant_id):
        latest = (StatsSnapshot.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment)
                  .order_by("-day").values_list("day", flat=True).first())
        written = 0
        for day in _days(max(first_day, latest or first_day), last_day):
            until = min(end, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))
            by_variant = variant_stats(experiment, experiment.started_at, until)
            with transaction.atomic():
                for name, (units, stats) in by_variant.items():
                    StatsSnapshot.objects.for_tenant(experiment.tenant_id).update_or_create(
                        tenant_id=experiment.tenant_id, experiment=experiment, variant=name, day=day,
                        defaults={"units": units, "stats": {k: s.as_dict() for k, s in stats.items()},
                                  "computed_at": now},
                    )
                    written += 1
    return written


def snapshot_tenant(tenant_id: int, now: dt.datetime | None = None) -> int:
    """Every experiment of the shop that runs, is paused, or stopped after its last snapshot."""
    now = now or timezone.now()
    written = 0
    with tenant_context(tenant_id):
        experiments = Experiment.objects.for_tenant(tenant_id).filter(started_at__isnull=False).exclude(
            status=Experiment.Status.STOPPED, stopped_at__lt=now - dt.timedelta(days=2))
        for experiment in experiments:
            written += snapshot_experiment(experiment, now)
    return written
