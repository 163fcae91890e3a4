"""The beat task that keeps the experiments' statistics snapshots current (experiments/snapshots.py), every
RECSVC_EXPERIMENT_STATS_INTERVAL_S. Pages read the snapshots; nothing scans events on a page view."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from experiments.models import Experiment
from experiments.snapshots import snapshot_tenant
from tenants.context import dangerously_all_tenants

log = logging.getLogger(__name__)


def tenants_with_experiments(now: dt.datetime) -> list[int]:
    with dangerously_all_tenants():  # only to list them; each snapshot runs as its tenant
        recent = now - dt.timedelta(days=2)
        rows = (Experiment.objects.dangerously_all_tenants().filter(started_at__isnull=False)
                .exclude(status=Experiment.Status.STOPPED, stopped_at__lt=recent)
                .values_list("tenant_id", flat=True).distinct())
        return sorted(set(rows))


@shared_task(name="experiments.tasks.snapshot_experiments", soft_time_limit=600, time_limit=660)
def snapshot_experiments() -> dict[str, int]:
    now = timezone.now()
    written = failed = 0
    tenants = tenants_with_experiments(now)
    for tenant_id in tenants:
        try:
            written += snapshot_tenant(tenant_id, now)
        except Exception:  # one shop's failure must not stop the others' statistics
            failed += 1
            log.exception("experiment snapshots failed for tenant %s", tenant_id)
    return {"tenants": len(tenants), "written": written, "failed": failed}
