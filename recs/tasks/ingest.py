"""Celery tasks of the `ingest` queue: thin, id-taking, idempotent."""

from __future__ import annotations

import contextlib
import logging
import os

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from recs.ingest.imports import run_import
from recs.models import ImportJob
from tenants.context import tenant_context

log = logging.getLogger(__name__)


@shared_task(name="recs.tasks.ingest.run_import_job", acks_late=True)
def run_import_job(tenant_id: int, job_id: int) -> str:
    with tenant_context(tenant_id):
        job = ImportJob.objects.for_tenant(tenant_id).filter(pk=job_id).first()
        if job is None or job.status == ImportJob.Status.SUCCEEDED:
            return "skipped"
        return run_import(job).status


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
                with contextlib.suppress(FileNotFoundError):
                    os.remove(job.file_path)
