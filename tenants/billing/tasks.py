"""Celery tasks of billing: thin, id-taking, idempotent (see reporting.py for why re-runs are safe)."""

from __future__ import annotations

from celery import shared_task

from tenants.billing import reporting
from tenants.billing.reporting import UsageReportFailed
from tenants.models import Tenant


@shared_task(name="tenants.billing.tasks.report_usage")
def report_usage() -> int:
    """Celery beat (CELERY_BEAT_SCHEDULE): one report task per active shop."""
    tenant_ids = list(Tenant.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    for tenant_id in tenant_ids:
        report_tenant_usage.delay(tenant_id)
    return len(tenant_ids)


@shared_task(
    name="tenants.billing.tasks.report_tenant_usage",
    acks_late=True,
    autoretry_for=(UsageReportFailed,),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=6,  # after that the next beat run picks the pending reports up again
)
def report_tenant_usage(tenant_id: int) -> dict:
    summary = reporting.report_tenant_usage(tenant_id)
    return {"queued": summary.queued, "sent": summary.sent, "failed": summary.failed}
