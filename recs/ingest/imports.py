"""Streaming bulk import of NDJSON or CSV files: constant memory, progress recorded per chunk.

The upload is streamed to disk by the API; a Celery worker reads it chunk by chunk and loads each
chunk through the same functions the REST API uses (COPY into a staging table for events), so a
10-million-row back-fill holds one chunk in memory at a time. A chunk ends at CHUNK_ROWS rows or once it
holds CHUNK_BYTES, whichever comes first, so a file of long lines is held no more than one of short ones.

Bad rows never stop an import: each is reported with its record number (`row`, from 0, header and
blank lines not counted) and the file line it starts on (`line`, from 1), and the rest is loaded. That
includes lines that are not valid UTF-8 and NDJSON lines longer than MAX_LINE_BYTES. Only a file that
cannot be read as a whole (a CSV header that is not UTF-8, repeats a column, has more than
RECSVC_IMPORT_MAX_CSV_COLUMNS columns or more than MAX_HEADER_CHARS characters; a CSV record longer
than MAX_LINE_BYTES characters, a CSV syntax error) fails the job, with `error_message` saying why and
where, as does the import's time limit; the chunks before it stay loaded and a re-run (re-upload) stores
nothing twice. Every check reads a bounded amount and costs time linear in it: a hostile header is
refused before it is split into more columns than the limit.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from recs.ingest import catalog, import_jobs
from recs.ingest.errors import IngestResult, RowError
from recs.ingest.events import ingest_events
from recs.models import ImportJob
from tenants.billing import usage

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
CATALOG_CHUNK_ROWS = 1_000
# Rows parsed from a chunk take several times its bytes (dicts, validated rows): 32 MiB keeps a worker's
# peak within a few hundred MB whatever the lines' length (tests/bench/import_memory.py measures it).
CHUNK_BYTES = 32 << 20
MAX_KEPT_ERRORS = 100
# A longer NDJSON line is reported as a bad row and skipped without ever being held in memory whole; a
# longer CSV record (in characters: a quoted field may span lines) fails the job.
MAX_LINE_BYTES = 1 << 20
# Room for RECSVC_IMPORT_MAX_CSV_COLUMNS names of 64 characters; read before the header is split.
MAX_HEADER_CHARS = 1 << 16
_BLOCK = 1 << 20


@dataclass(frozen=True)
class ChunkLimits:
    """Where a chunk of the file ends and how long one line or record may be (production's by default;
    a test passes small ones to see several chunks of a small file)."""

    rows: int = CHUNK_ROWS  # events
    catalog_rows: int = CATALOG_CHUNK_ROWS
    bytes: int = CHUNK_BYTES
    line_bytes: int = MAX_LINE_BYTES


DEFAULT_LIMITS = ChunkLimits()
# Called with the job and the chunk's rows before each chunk loads (progress observers, tests).
BeforeChunk = Callable[["ImportJob", list], None]


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


def _ndjson_chunks(handle, size: int, limits: ChunkLimits) -> Iterator[_Chunk]:
    chunk, held, line_no = _Chunk(), 0, 0
    while line := handle.readline(limits.line_bytes + 1):
        line_no += 1
        if len(line) > limits.line_bytes and not line.endswith(b"\n"):
            while (rest := handle.readline(_BLOCK)) and not rest.endswith(b"\n"):
                pass
            chunk.add(_Rejected(f"The line is longer than {limits.line_bytes} bytes."), line_no)
        elif line.strip():
            chunk.add(_checked_utf8(line), line_no)
            held += len(line)
        if len(chunk.rows) >= size or held >= limits.bytes:
            chunk.position = handle.tell()
            yield chunk
            chunk, held = _Chunk(), 0
    if chunk.rows:
        chunk.position = handle.tell()
        yield chunk


def _checked_utf8(line: bytes) -> bytes | _Rejected:
    """The line, or a clear row error when it is not UTF-8 (ASCII lines, the usual case, are not decoded)."""
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _Rejected(f"The line is not valid UTF-8 (byte {exc.start + 1}).")
    return line


def _is_utf8(text: str) -> bool:
    # Undecodable bytes arrive as lone surrogates (errors="surrogateescape"), which cannot be encoded.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _RecordTooLong(Exception):
    pass


class _BoundedLines:
    """The text's lines for csv.reader, each record (header or row, which may span lines) read up to a
    budget of characters: a longer one raises _RecordTooLong before more than the budget is held."""

    def __init__(self, text: io.TextIOWrapper):
        self.text = text
        self.budget = 0
        self.read = 0  # characters read since the record began
        self.total = 0  # characters read in all

    def start_record(self, budget: int) -> None:
        self.budget, self.read = budget, 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.budget - self.read + 1)
        if not line:
            raise StopIteration
        self.read += len(line)
        self.total += len(line)
        if self.read > self.budget:
            raise _RecordTooLong
        return line


def _csv_header(reader, lines: _BoundedLines) -> list[str] | None:
    lines.start_record(MAX_HEADER_CHARS)
    try:
        header = next(reader, None)
    except _RecordTooLong:
        raise ImportFileError(f"The CSV header (line 1) is longer than {MAX_HEADER_CHARS} characters.") from None
    except csv.Error as exc:
        raise ImportFileError(f"The CSV header (line 1) cannot be parsed: {exc}.") from None
    if header is None:
        return None
    limit = settings.RECSVC_IMPORT_MAX_CSV_COLUMNS
    if len(header) > limit:
        raise ImportFileError(f"The CSV header has {len(header)} columns; at most {limit} are accepted.")
    header = [name.strip() for name in header]
    if not _is_utf8("".join(header)):
        raise ImportFileError("The CSV header (line 1) is not valid UTF-8.")
    repeated = sorted(name for name, seen in collections.Counter(header).items() if seen > 1)
    if repeated:
        raise ImportFileError(f"The CSV header repeats the column(s) {', '.join(repeated)}.")
    return header


def _csv_chunks(handle, size: int, limits: ChunkLimits) -> Iterator[_Chunk]:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark, which would corrupt the first column.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        lines = _BoundedLines(text)
        reader = csv.reader(lines)
        header = _csv_header(reader, lines)
        if header is None:
            return
        chunk, line_no, chunk_start = _Chunk(), reader.line_num, lines.total
        while True:
            start = line_no + 1
            lines.start_record(limits.line_bytes)
            try:
                record = next(reader, None)
            except _RecordTooLong:
                raise ImportFileError(
                    f"The CSV record starting at line {start} is longer than {limits.line_bytes} characters."
                ) from None
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
            if len(chunk.rows) >= size or lines.total - chunk_start >= limits.bytes:
                chunk.position = handle.tell()
                yield chunk
                chunk, chunk_start = _Chunk(), lines.total
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


def run_import(
    job: ImportJob, now: dt.datetime | None = None, *, limits: ChunkLimits = DEFAULT_LIMITS,
    before_chunk: BeforeChunk | None = None,
) -> ImportJob:
    """Load the job's file. Idempotent: a re-run after a crash skips the rows already stored
    (event_ids dedupe; catalog rows upsert).

    A job's time budget (RECSVC_IMPORT_TIME_LIMIT_S, also the task's soft time limit) counts from its
    first start: a job redelivered after its worker was killed runs again only within it, so a file that
    outlasts the limit fails once instead of being re-run for ever."""
    now = now or timezone.now()
    limit = settings.RECSVC_IMPORT_TIME_LIMIT_S
    if job.started_at is not None and now - job.started_at > dt.timedelta(seconds=limit):
        return _fail(job, f"The import was stopped at its time limit ({limit} s) and not started again. "
                     "Upload the rest, or the file in parts (stored rows are not duplicated).")
    job.status = ImportJob.Status.RUNNING
    job.started_at = job.started_at or now
    job.processed_bytes = job.rows_ok = job.rows_duplicate = job.rows_failed = 0
    job.errors = []
    job.error_message = ""
    job.save()
    row_offset = 0
    size = limits.rows if job.kind == ImportJob.Kind.EVENTS else limits.catalog_rows
    reader = _ndjson_chunks if job.format == ImportJob.Format.NDJSON else _csv_chunks
    try:
        with open(job.file_path, "rb") as handle:
            for chunk in reader(handle, size, limits):
                if before_chunk is not None:
                    before_chunk(job, chunk.rows)
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
    except SoftTimeLimitExceeded:
        job.status = ImportJob.Status.FAILED
        job.error_message = (
            f"The import took longer than {limit} s, the limit; the rows before were stored. Upload the rest, "
            "or the file in parts (stored rows are not duplicated)."
        )
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
        import_jobs.remove_upload(job)
    return job


def _fail(job: ImportJob, message: str) -> ImportJob:
    job.status, job.error_message, job.finished_at = ImportJob.Status.FAILED, message, timezone.now()
    job.save(update_fields=["status", "error_message", "finished_at"])
    return job


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
