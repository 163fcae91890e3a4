"""Celery tasks of the `ingest` queue: thin, id-taking, idempotent. Plus the hourly sweep of import
jobs (a beat task, routed to `default`)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from recs.ingest import import_jobs
from recs.ingest.imports import run_import
from recs.models import ImportJob
from tenants.context import tenant_context

log = logging.getLogger(__name__)


# Soft limit: run_import records the failure and returns, so the message is acknowledged. A message
# redelivered after a kill (acks_late, reject_on_worker_lost) finds the job ended, or past its time budget.
@shared_task(
    name="recs.tasks.ingest.run_import_job", acks_late=True,
    soft_time_limit=settings.RECSVC_IMPORT_TIME_LIMIT_S, time_limit=import_jobs.hard_time_limit(),
)
def run_import_job(tenant_id: int, job_id: int) -> str:
    with tenant_context(tenant_id):
        job = ImportJob.objects.for_tenant(tenant_id).filter(pk=job_id).first()
        if job is None or job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
            return "skipped"
        return run_import(job).status


@shared_task(name="recs.tasks.ingest.sweep_imports")
def sweep_imports() -> dict[str, int]:
    summary = import_jobs.sweep_imports()
    return {"failed": summary.failed, "files_deleted": summary.files_deleted}


def enqueue_import(job: ImportJob) -> None:
    """Start the job once the row that describes it is committed (a worker must be able to read it)."""
    transaction.on_commit(lambda: _send(job.tenant_id, job.pk))


def _send(tenant_id: int, job_id: int) -> None:
    try:
        run_import_job.delay(tenant_id, job_id)
    except Exception:
        # The broker is unreachable: say so on the job instead of leaving it queued for ever.
        log.exception("import job %s could not be queued", job_id)
        with tenant_context(tenant_id):
            job = ImportJob.objects.for_tenant(tenant_id).filter(pk=job_id, status=ImportJob.Status.QUEUED).first()
            if job is not None:
                job.status = ImportJob.Status.FAILED
                job.error_message = "The import could not be queued (task broker unavailable). Upload the file again."
                job.finished_at = timezone.now()
                job.save(update_fields=["status", "error_message", "finished_at"])
                import_jobs.remove_upload(job)
