"""Streaming bulk import of NDJSON or CSV files: constant memory, progress recorded per chunk.

The upload is streamed to disk by the API; a Celery worker reads it chunk by chunk and loads each
chunk through the same functions the REST API uses (COPY into a staging table for events), so a
10-million-row back-fill holds one chunk in memory at a time.

Bad rows never stop an import: each is reported with its record number (`row`, from 0, header and
blank lines not counted) and the file line it starts on (`line`, from 1), and the rest is loaded. That
includes lines that are not valid UTF-8 and NDJSON lines longer than MAX_LINE_BYTES. Only a file that
cannot be read as a whole (a CSV header that is not UTF-8 or repeats a column, a CSV syntax error)
fails the job, with `error_message` saying why and where; the chunks before it stay loaded and a
re-run (re-upload) stores nothing twice.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from recs.ingest import catalog
from recs.ingest.errors import IngestResult, RowError
from recs.ingest.events import ingest_events
from recs.models import ImportJob
from tenants.billing import usage

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
CATALOG_CHUNK_ROWS = 1_000
MAX_KEPT_ERRORS = 100
# A longer NDJSON line is reported as a bad row and skipped without ever being held in memory whole.
MAX_LINE_BYTES = 1 << 20
_BLOCK = 1 << 20


def new_upload_path(tenant_id: int, fmt: str) -> Path:
    folder = Path(settings.RECSVC_IMPORT_DIR) / str(tenant_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}.{fmt}"


class ImportFileError(Exception):
    """The file cannot be read on: the job fails with this message."""


@dataclass(frozen=True)
class _Rejected:
    """A record refused while reading the file (the validators never see it)."""

    message: str


@dataclass
class _Chunk:
    rows: list[Any] = field(default_factory=list)  # bytes lines, CSV dicts or _Rejected
    lines: list[int] = field(default_factory=list)  # the file line each row starts on
    position: int = 0  # bytes of the file consumed so far

    def add(self, row: Any, line: int) -> None:
        self.rows.append(row)
        self.lines.append(line)


def _ndjson_chunks(handle, size: int) -> Iterator[_Chunk]:
    chunk, line_no = _Chunk(), 0
    while line := handle.readline(MAX_LINE_BYTES + 1):
        line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(_BLOCK)) and not rest.endswith(b"\n"):
                pass
            chunk.add(_Rejected(f"The line is longer than {MAX_LINE_BYTES} bytes."), line_no)
        elif line.strip():
            chunk.add(line, line_no)
        if len(chunk.rows) >= size:
            yield _checked_utf8(chunk, handle.tell())
            chunk = _Chunk()
    if chunk.rows:
        yield _checked_utf8(chunk, handle.tell())


def _checked_utf8(chunk: _Chunk, position: int) -> _Chunk:
    """Replace lines that are not UTF-8 by a clear row error (one decode of the chunk in the usual case)."""
    chunk.position = position
    lines = [row for row in chunk.rows if isinstance(row, bytes)]
    try:
        b"".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        for i, row in enumerate(chunk.rows):
            if isinstance(row, bytes):
                try:
                    row.decode("utf-8")
                except UnicodeDecodeError as exc:
                    chunk.rows[i] = _Rejected(f"The line is not valid UTF-8 (byte {exc.start + 1}).")
    return chunk


def _is_utf8(text: str) -> bool:
    # Undecodable bytes arrive as lone surrogates (errors="surrogateescape"), which cannot be encoded.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_chunks(handle, size: int) -> Iterator[_Chunk]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark, which would corrupt the first column.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ImportFileError(f"The CSV header (line 1) cannot be parsed: {exc}.") from None
        if header is None:
            return
        header = [name.strip() for name in header]
        if not _is_utf8("".join(header)):
            raise ImportFileError("The CSV header (line 1) is not valid UTF-8.")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise ImportFileError(f"The CSV header repeats the column(s) {', '.join(repeated)}.")
        chunk, line_no = _Chunk(), reader.line_num
        while True:
            start = line_no + 1
            try:
                record = next(reader, None)
            except csv.Error as exc:
                raise ImportFileError(f"CSV syntax error at line {start}: {exc}.") from None
            line_no = reader.line_num
            if record is None:
                break
            if not record:
                continue  # a blank line
            if len(record) > len(header):
                chunk.add(_Rejected(f"The row has {len(record)} cells, the header {len(header)} columns."), start)
            elif not _is_utf8("".join(record)):
                chunk.add(_Rejected("The row is not valid UTF-8."), start)
            else:
                chunk.add(dict(zip(header, record, strict=False)), start)
            if len(chunk.rows) >= size:
                chunk.position = handle.tell()
                yield chunk
                chunk = _Chunk()
        if chunk.rows:
            chunk.position = handle.tell()
            yield chunk
    finally:
        text.detach()  # the caller owns (and closes) the binary handle


def _jsonb_safe(value: Any) -> Any:
    """Messages may quote the shop's input; PostgreSQL's jsonb cannot store NUL characters."""
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    return value


def run_import(job: ImportJob) -> ImportJob:
    """Load the job's file. Idempotent: a re-run after a crash skips the rows already stored
    (event_ids dedupe; catalog rows upsert)."""
    job.status = ImportJob.Status.RUNNING
    job.started_at = timezone.now()
    job.processed_bytes = job.rows_ok = job.rows_duplicate = job.rows_failed = 0
    job.errors = []
    job.error_message = ""
    job.save()
    row_offset = 0
    size = CHUNK_ROWS if job.kind == ImportJob.Kind.EVENTS else CATALOG_CHUNK_ROWS
    reader = _ndjson_chunks if job.format == ImportJob.Format.NDJSON else _csv_chunks
    try:
        with open(job.file_path, "rb") as handle:
            for chunk in reader(handle, size):
                result = _load_chunk(job, chunk.rows)
                usage.record(job.tenant_id, usage.EVENTS, result.stored if job.kind == ImportJob.Kind.EVENTS else 0)
                room = MAX_KEPT_ERRORS - len(job.errors)
                job.errors += [
                    {"row": row_offset + e.row, "line": chunk.lines[e.row], "errors": _jsonb_safe(e.errors)}
                    for e in result.row_errors[:max(room, 0)]
                ]
                row_offset += len(chunk.rows)
                job.processed_bytes = chunk.position
                job.rows_ok += result.stored
                job.rows_duplicate += result.duplicates
                job.rows_failed += result.rejected
                job.save(update_fields=["processed_bytes", "rows_ok", "rows_duplicate", "rows_failed", "errors"])
    except ImportFileError as exc:
        job.status, job.error_message = ImportJob.Status.FAILED, str(exc)
    except OSError as exc:
        # strerror only: the message is shown to the shop, the server's path is not theirs to see.
        job.status = ImportJob.Status.FAILED
        job.error_message = f"The uploaded file cannot be read ({exc.strerror or type(exc).__name__})."
    except Exception:
        log.exception("import job %s failed", job.pk)
        job.status = ImportJob.Status.FAILED
        job.error_message = (
            f"Unexpected error after {row_offset} rows; the rows before were stored. Upload the file again "
            "to retry (stored rows are not duplicated)."
        )
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
    """Load the readable rows, and report the ones the reader refused, all by position in `rows`."""
    kept = [i for i, row in enumerate(rows) if not isinstance(row, _Rejected)]
    if len(kept) == len(rows):
        return _load_rows(job, rows)
    result = _load_rows(job, [rows[i] for i in kept]) if kept else IngestResult()
    result.received = len(rows)
    result.row_errors = [RowError(kept[e.row], e.errors) for e in result.row_errors] + [
        RowError(i, {"non_field_errors": [row.message]}) for i, row in enumerate(rows) if isinstance(row, _Rejected)
    ]
    result.row_errors.sort(key=lambda e: e.row)
    return result


def _load_rows(job: ImportJob, rows: list) -> IngestResult:
    if job.kind == ImportJob.Kind.EVENTS:
        return ingest_events(job.tenant_id, rows)
    return catalog.import_catalog_rows(job.tenant_id, job.kind, rows, from_csv=job.format == ImportJob.Format.CSV)
