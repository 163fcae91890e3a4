"""Celery tasks of the `ingest` queue: thin, id-taking, idempotent."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from recs.ingest.imports import run_import
from recs.models import ImportJob
from tenants.context import tenant_context


@shared_task(name="recs.tasks.ingest.run_import_job", acks_late=True)
def run_import_job(tenant_id: int, job_id: int) -> str:
    with tenant_context(tenant_id):
        job = ImportJob.objects.for_tenant(tenant_id).filter(pk=job_id).first()
        if job is None or job.status == ImportJob.Status.SUCCEEDED:
            return "skipped"
        return run_import(job).status


def enqueue_import(job: ImportJob) -> None:
    """Start the job once the row that describes it is committed (a worker must be able to read it)."""
    transaction.on_commit(lambda: run_import_job.delay(job.tenant_id, job.pk))
