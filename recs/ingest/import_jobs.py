"""An import job's life around its run: admitting an upload, its file, and sweeping jobs that ended or
were lost (the run itself is recs/ingest/imports.py).

One shop's imports may delay only that shop: it has at most RECSVC_MAX_CONCURRENT_IMPORTS jobs queued or
running, and its upload files (those of queued, running and failed jobs) hold at most
RECSVC_IMPORT_QUOTA_BYTES. Both are decided before a byte of the upload is written, on the job row that
reserves the place: concurrent uploads of one shop wait for each other on the shop's row, so two of them
cannot both take the last place.

A succeeded job's file is removed when it ends. A failed job's file is kept for
RECSVC_IMPORT_FAILED_RETENTION_DAYS (to look into the failure), then removed by `sweep_imports`, which
also fails the jobs whose worker is gone: still running past their time limits (the hard limit killed
the worker) or never started (their message was lost), so that they no longer hold the shop's places.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from recs.models import ImportJob
from tenants.context import dangerously_all_tenants
from tenants.models import Tenant

log = logging.getLogger(__name__)

ACTIVE = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
# Statuses whose job may still hold its upload file (a job releases it by clearing file_path).
HOLDING_A_FILE = (*ACTIVE, ImportJob.Status.FAILED)
# Past the soft limit the task has a minute to record why it stopped, then it is killed.
HARD_LIMIT_GRACE_S = 60


class ImportRefused(Exception):
    """The shop may not start this upload now: the message says why and what to do."""


class TooManyImports(ImportRefused):
    pass


class UploadQuotaExceeded(ImportRefused):
    pass


class UploadTooLarge(ImportRefused):
    pass


class EmptyUpload(ImportRefused):
    pass


_BLOCK = 1 << 20


def store_upload(tenant_id: int, kind: str, fmt: str, stream: BinaryIO, declared_size: int) -> ImportJob:
    """A queued job holding the uploaded file: the place is reserved (`reserve`) before a byte is written,
    then `stream` is copied to the job's file a block at a time (never whole into memory), at most
    RECSVC_MAX_IMPORT_BYTES whatever `declared_size` said. The API (a raw body) and the dashboard (a form's
    file) both upload through here; the caller queues the job once this returns.

    Raises ImportRefused (TooManyImports, UploadQuotaExceeded, UploadTooLarge, EmptyUpload): a refused or
    interrupted upload leaves no file and no job behind."""
    limit = settings.RECSVC_MAX_IMPORT_BYTES
    if declared_size > limit:
        raise UploadTooLarge(f"Imports are limited to {limit} bytes.")
    job = reserve(tenant_id, kind, fmt, max(declared_size, 0))
    size = 0
    try:
        with open(job.file_path, "wb") as out:
            while block := stream.read(_BLOCK):
                size += len(block)
                if size > limit:
                    raise UploadTooLarge(f"Imports are limited to {limit} bytes.")
                out.write(block)
        if size == 0:
            raise EmptyUpload("The upload is empty.")
        job.size_bytes = size
        job.save(update_fields=["size_bytes"])
    except BaseException:
        # Nothing half-written: a refused or interrupted upload leaves no file and no job behind.
        remove_upload(job)
        job.delete()
        raise
    return job


def hard_time_limit() -> int:
    return settings.RECSVC_IMPORT_TIME_LIMIT_S + HARD_LIMIT_GRACE_S


def reserve(tenant_id: int, kind: str, fmt: str, size: int) -> ImportJob:
    """A queued job with a new, not yet written, upload path; raises ImportRefused (nothing written)."""
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk", flat=True).first()
        jobs = ImportJob.objects.for_tenant(tenant_id)
        limit = settings.RECSVC_MAX_CONCURRENT_IMPORTS
        active = jobs.filter(status__in=ACTIVE).count()
        if active >= limit:
            raise TooManyImports(
                f"This shop already has {active} import{'s' if active != 1 else ''} queued or running "
                f"(at most {limit} at a time); wait for {'it' if active == 1 else 'one'} to finish."
            )
        quota = settings.RECSVC_IMPORT_QUOTA_BYTES
        held = jobs.filter(status__in=HOLDING_A_FILE).exclude(file_path="").aggregate(n=Sum("size_bytes"))["n"] or 0
        if held + size > quota:
            raise UploadQuotaExceeded(
                f"This shop's stored uploads would exceed {quota} bytes ({held} bytes are held by queued, running "
                "and recently failed imports); wait for them to finish or expire."
            )
        path = new_upload_path(tenant_id, fmt)
        return ImportJob.objects.create(
            tenant_id=tenant_id, kind=kind, format=fmt, file_path=str(path), size_bytes=size
        )


def new_upload_path(tenant_id: int, fmt: str) -> Path:
    folder = Path(settings.RECSVC_IMPORT_DIR) / str(tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}.{fmt}"


def remove_upload(job: ImportJob) -> bool:
    """Delete the job's file and record that it holds none; whether a file was there."""
    removed = False
    if job.file_path:
        with contextlib.suppress(FileNotFoundError):
            os.remove(job.file_path)
            removed = True
        job.file_path = ""
        job.save(update_fields=["file_path"])
    return removed


@dataclass(frozen=True)
class SweepSummary:
    failed: int  # jobs whose worker was gone, now failed
    files_deleted: int


def sweep_imports(now: dt.datetime | None = None) -> SweepSummary:
    """Celery beat, hourly: fail the jobs whose worker is gone and delete expired upload files, across
    shops. `now` is the clock (tests pass theirs)."""
    now = now or timezone.now()
    limits = dt.timedelta(seconds=settings.RECSVC_IMPORT_TIME_LIMIT_S + hard_time_limit())
    failed = files_deleted = 0
    with dangerously_all_tenants():
        jobs = ImportJob.objects.dangerously_all_tenants()
        # A run's budget counts from its first start and its last attempt began within it: past both
        # limits no attempt can still be running.
        for job in jobs.filter(status=ImportJob.Status.RUNNING, started_at__lt=now - limits):
            failed += _fail(job, now, "The import stopped (its worker was lost or it reached its time limit, "
                            f"{settings.RECSVC_IMPORT_TIME_LIMIT_S} s). Upload the file again to retry; stored "
                            "rows are not duplicated.")
        waited = dt.timedelta(seconds=settings.RECSVC_IMPORT_QUEUED_TIMEOUT_S)
        for job in jobs.filter(status=ImportJob.Status.QUEUED, created_at__lt=now - waited):
            failed += _fail(job, now, "The import was not started (no worker took it in time). Upload the "
                            "file again.")
        retention = dt.timedelta(days=settings.RECSVC_IMPORT_FAILED_RETENTION_DAYS)
        expired = jobs.filter(
            status__in=(ImportJob.Status.FAILED, ImportJob.Status.SUCCEEDED), finished_at__lt=now - retention
        ).exclude(file_path="")
        for job in expired:
            files_deleted += remove_upload(job)
    if failed or files_deleted:
        log.info("import sweep: %d lost jobs failed, %d upload files deleted", failed, files_deleted)
    return SweepSummary(failed=failed, files_deleted=files_deleted)


def _fail(job: ImportJob, now: dt.datetime, message: str) -> int:
    # Only if it is still where the query found it: a worker may have finished it meanwhile.
    return ImportJob.objects.dangerously_all_tenants().filter(pk=job.pk, status=job.status).update(
        status=ImportJob.Status.FAILED, error_message=message, finished_at=now
    )
