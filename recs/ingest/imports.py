"""Streaming bulk import of NDJSON or CSV files: constant memory, progress recorded per chunk.

The upload is streamed to disk by the API; a Celery worker reads it chunk by chunk and loads each
chunk through the same functions the REST API uses (COPY into a staging table for events), so a
10-million-row back-fill holds one chunk in memory at a time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from recs.ingest import catalog
from recs.ingest.errors import IngestResult
from recs.ingest.events import ingest_events
from recs.models import ImportJob

CHUNK_ROWS = 50_000
CATALOG_CHUNK_ROWS = 1_000
MAX_KEPT_ERRORS = 100
_BLOCK = 1 << 20


def new_upload_path(tenant_id: int, fmt: str) -> Path:
    folder = Path(settings.RECSVC_IMPORT_DIR) / str(tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}.{fmt}"


def _ndjson_chunks(handle, size: int) -> Iterator[tuple[list[bytes], int]]:
    rows: list[bytes] = []
    for line in handle:
        if line.strip():
            rows.append(line)
        if len(rows) >= size:
            yield rows, handle.tell()
            rows = []
    if rows:
        yield rows, handle.tell()


def _csv_chunks(handle, size: int) -> Iterator[tuple[list[dict], int]]:
    text = io.TextIOWrapper(handle, encoding="utf-8", errors="strict", newline="")
    reader = csv.DictReader(text)
    rows: list[dict] = []
    for row in reader:
        rows.append(row)
        if len(rows) >= size:
            yield rows, handle.tell()
            rows = []
    if rows:
        yield rows, handle.tell()


def run_import(job: ImportJob) -> ImportJob:
    """Load the job's file. Idempotent: a re-run after a crash skips the rows already stored
    (event_ids dedupe; catalog rows upsert)."""
    job.status = ImportJob.Status.RUNNING
    job.started_at = timezone.now()
    job.processed_bytes = job.rows_ok = job.rows_duplicate = job.rows_failed = 0
    job.errors = []
    job.save()
    total = IngestResult()
    row_offset = 0
    try:
        with open(job.file_path, "rb") as handle:
            chunks = (_ndjson_chunks if job.format == ImportJob.Format.NDJSON else _csv_chunks)(
                handle, CHUNK_ROWS if job.kind == ImportJob.Kind.EVENTS else CATALOG_CHUNK_ROWS
            )
            for rows, position in chunks:
                result = _load_chunk(job, rows)
                total.merge(result, row_offset)
                row_offset += len(rows)
                job.processed_bytes = position
                job.rows_ok, job.rows_duplicate, job.rows_failed = total.stored, total.duplicates, total.rejected
                job.errors = [e.as_dict() for e in total.row_errors[:MAX_KEPT_ERRORS]]
                del total.row_errors[MAX_KEPT_ERRORS:]
                job.save(update_fields=["processed_bytes", "rows_ok", "rows_duplicate", "rows_failed", "errors"])
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        job.status = ImportJob.Status.FAILED
        job.error_message = f"{type(exc).__name__}: {exc}"
    else:
        job.status = ImportJob.Status.SUCCEEDED
        job.processed_bytes = job.size_bytes
    job.finished_at = timezone.now()
    job.save()
    if job.status == ImportJob.Status.SUCCEEDED:
        _remove(job.file_path)
    return job


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _load_chunk(job: ImportJob, rows: list) -> IngestResult:
    if job.kind == ImportJob.Kind.EVENTS:
        return ingest_events(job.tenant_id, rows)
    return catalog.import_catalog_rows(job.tenant_id, job.kind, rows, from_csv=job.format == ImportJob.Format.CSV)
