"""Imports cannot stall other shops or exhaust the service: hostile CSV headers and records fail fast,
every task has time limits and a time-limited import ends failed (never re-run), webhook deliveries have a
queue of their own, a shop runs a bounded number of imports at once within a quota of stored bytes, chunks
are bounded in bytes, and upload files of ended jobs are swept away (issue 25)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal

import billiard.pool
import pytest
from django.utils import timezone

from config.celery import app as celery_app
from recs.ingest import import_jobs, imports
from recs.models import Event, ImportJob
from recs.tasks.ingest import run_import_job
from tenants.context import tenant_context
from tests.factories import ProductFactory

NDJSON = "application/x-ndjson"


def _line(event_id: str, **fields) -> str:
    event = {"event_id": event_id, "type": "view", "customer_id": "c1", "product_id": "p1",
             "timestamp": "2024-05-01T10:00:00Z", **fields}
    return json.dumps(event)


def _events(n: int, prefix: str = "e") -> bytes:
    return "".join(_line(f"{prefix}{i}") + "\n" for i in range(n)).encode()


def _upload(api, body: bytes, kind: str = "events", content_type: str = NDJSON):
    return api.generic("POST", f"/v1/imports?kind={kind}", body, content_type=content_type)


def _problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _files(folder) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _job(tenant, job_id: int) -> ImportJob:
    return ImportJob.objects.for_tenant(tenant).get(pk=job_id)


@pytest.fixture
def catalog(tenant):
    return [ProductFactory(tenant=tenant, external_id=sku) for sku in ("p1", "p2")]


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Upload and run the import the upload enqueues (eager: in this process, when the request commits)."""

    def upload(api, tenant, body: bytes, **kwargs) -> ImportJob:
        with django_capture_on_commit_callbacks(execute=True):
            response = _upload(api, body, **kwargs)
        assert response.status_code == 202, response.content
        return _job(tenant, response.json()["id"])

    return upload


@pytest.fixture
def run_with(django_capture_on_commit_callbacks):
    """Upload through the API, then run the queued job as the worker's task does, with the chunk limits and
    the observer the test gives."""

    def upload(api, tenant, body: bytes, *, limits=imports.DEFAULT_LIMITS, before_chunk=None,
               **kwargs) -> ImportJob:
        with django_capture_on_commit_callbacks(execute=False):
            response = _upload(api, body, **kwargs)
        assert response.status_code == 202, response.content
        with tenant_context(tenant.pk):
            return imports.run_import(_job(tenant, response.json()["id"]), limits=limits, before_chunk=before_chunk)

    return upload


# --- hostile CSV headers and records ---------------------------------------------------------------------


@pytest.mark.django_db
def test_csv_header_of_60000_columns_fails_the_job_at_once_naming_the_limit(api, tenant, import_dir, run_on_commit):
    """The issue's attack: a 409 KB header of 60,000 columns held the worker 62 s (header.count per column)."""
    header = ",".join(f"col{i}" for i in range(60_000))
    body = (header + "\n" + ",".join("x" * 60_000) + "\n").encode()
    job = run_on_commit(api, tenant, body, content_type="text/csv")
    assert job.status == ImportJob.Status.FAILED
    assert job.error_message == f"The CSV header (line 1) is longer than {imports.MAX_HEADER_CHARS} characters."
    assert job.rows_ok == job.rows_failed == 0


@pytest.mark.django_db
def test_csv_header_over_the_column_limit_fails_naming_the_limit(api, tenant, import_dir, run_on_commit, settings):
    settings.RECSVC_IMPORT_MAX_CSV_COLUMNS = 1_000
    header = ",".join(f"c{i}" for i in range(1_001))  # short enough: the column count refuses it
    assert len(header) < imports.MAX_HEADER_CHARS
    job = run_on_commit(api, tenant, (header + "\n").encode(), kind="products", content_type="text/csv")
    assert job.status == ImportJob.Status.FAILED
    assert job.error_message == "The CSV header has 1001 columns; at most 1000 are accepted."
    # Repeated names are still named, found in linear time.
    job = run_on_commit(api, tenant, b"id,title,id,b,b,c\n1,a,2,,,\n", kind="products", content_type="text/csv")
    assert job.error_message == "The CSV header repeats the column(s) b, id."


@pytest.mark.django_db
def test_csv_record_longer_than_the_line_limit_fails_the_job(api, tenant, catalog, import_dir, run_with):
    """A quoted field may span lines: the record as a whole is bounded, not only each physical line."""
    limits = imports.ChunkLimits(line_bytes=300)
    many_short_lines = "\n".join(["x" * 50] * 20)
    body = (
        "event_id,type,customer_id,product_id,session_id,timestamp\n"
        "r1,view,c1,p1,s1,2024-05-01T10:00:00Z\n"
        f'r2,view,c1,p1,"{many_short_lines}",2024-05-01T10:00:00Z\n'
        "r3,view,c1,p1,s1,2024-05-01T10:00:00Z\n"
    ).encode()
    job = run_with(api, tenant, body, limits=limits, content_type="text/csv")
    assert job.status == ImportJob.Status.FAILED
    assert job.error_message == "The CSV record starting at line 3 is longer than 300 characters."

    one_long_line = "event_id,type,customer_id,product_id,session_id\nr4,view,c1,p1," + "y" * 400 + "\n"
    job = run_with(api, tenant, one_long_line.encode(), limits=limits, content_type="text/csv")
    assert job.status == ImportJob.Status.FAILED
    assert job.error_message == "The CSV record starting at line 2 is longer than 300 characters."


# --- time limits ---------------------------------------------------------------------------------------------


def _limits(task) -> tuple[float | None, float | None]:
    conf = celery_app.conf
    soft = task.soft_time_limit if task.soft_time_limit is not None else conf.task_soft_time_limit
    hard = task.time_limit if task.time_limit is not None else conf.task_time_limit
    return soft, hard


def test_every_project_task_has_a_soft_and_a_hard_time_limit(settings):
    celery_app.loader.import_default_modules()  # every package's tasks module, as a worker imports them
    project = {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}
    assert {"recs.tasks.ingest.run_import_job", "training.tasks.train_model_version",
            "serving.tasks.build_index", "tenants.billing.tasks.report_tenant_usage"} <= set(project)
    for name, task in project.items():
        soft, hard = _limits(task)
        assert soft is not None and hard is not None and 0 < soft < hard, (name, soft, hard)
    assert _limits(project["recs.tasks.ingest.run_import_job"])[0] == settings.RECSVC_IMPORT_TIME_LIMIT_S
    assert _limits(project["training.tasks.train_model_version"])[0] >= 3600  # training runs for hours


@pytest.fixture
def soft_limit_on_second_chunk():
    """Deliver the soft time limit as the prefork pool does (SIGUSR1 to the process, billiard's handler
    raises SoftTimeLimitExceeded) as the second chunk is about to load. Yields the chunks' sizes seen and
    the observer to pass to run_import."""
    previous = signal.signal(signal.SIGUSR1, billiard.pool.soft_timeout_sighandler)
    calls: list[int] = []

    def before_chunk(job, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGUSR1)

    yield calls, before_chunk
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.django_db
def test_import_hitting_its_soft_time_limit_ends_failed_and_a_redelivery_does_nothing(
    api, tenant, catalog, import_dir, run_with, soft_limit_on_second_chunk, settings
):
    calls, before_chunk = soft_limit_on_second_chunk
    job = run_with(api, tenant, _events(20), limits=imports.ChunkLimits(rows=5), before_chunk=before_chunk)
    assert job.status == ImportJob.Status.FAILED
    assert job.error_message.startswith(
        f"The import took longer than {settings.RECSVC_IMPORT_TIME_LIMIT_S} s, the limit; the rows before were stored."
    )
    assert job.rows_ok == 5 and Event.objects.for_tenant(tenant).count() == 5
    assert calls == [5, 5]
    # acks_late + reject_on_worker_lost may deliver the message again: the failed job is not re-run.
    assert run_import_job.apply(args=(tenant.pk, job.pk)).get() == "skipped"
    assert _job(tenant, job.pk).error_message == job.error_message


@pytest.mark.django_db
def test_redelivered_import_past_its_time_budget_fails_instead_of_starting_over(
    api, tenant, catalog, import_dir, settings
):
    """A worker killed by the hard limit leaves the job running; its redelivery must not loop for ever."""
    response = _upload(api, _events(3))  # not committed-and-run: the job stays queued
    job = _job(tenant, response.json()["id"])
    began = timezone.now() - dt.timedelta(seconds=settings.RECSVC_IMPORT_TIME_LIMIT_S + 1)
    ImportJob.objects.for_tenant(tenant).filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, started_at=began)
    assert run_import_job.apply(args=(tenant.pk, job.pk)).get() == ImportJob.Status.FAILED
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "time limit" in job.error_message
    assert Event.objects.for_tenant(tenant).count() == 0
    assert _files(import_dir) != []  # kept for the retention period (swept later), see the sweep test

    # Within its budget, a redelivered running job (its worker was lost) is run again, idempotently.
    job2 = _job(tenant, _upload(api, _events(3, prefix="f")).json()["id"])
    ImportJob.objects.for_tenant(tenant).filter(pk=job2.pk).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now()
    )
    assert run_import_job.apply(args=(tenant.pk, job2.pk)).get() == ImportJob.Status.SUCCEEDED


# --- queues --------------------------------------------------------------------------------------------------


def _queue_of(task_name: str) -> str:
    return celery_app.amqp.router.route({}, task_name, (), {})["queue"].name


def test_webhook_deliveries_and_imports_have_queues_of_their_own():
    assert _queue_of("recs.integrations.tasks.process_webhook_delivery") == "webhooks"
    assert _queue_of("recs.tasks.ingest.run_import_job") == "ingest"
    assert _queue_of("recs.tasks.ingest.sweep_imports") == "default"  # bookkeeping, never behind imports
    from recs.integrations.tasks import process_webhook_delivery

    assert process_webhook_delivery.name == "recs.integrations.tasks.process_webhook_delivery"


# --- concurrency and quota per shop ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_shop_runs_a_bounded_number_of_imports_at_once(
    api, outsider_api, tenant, other_tenant, import_dir, settings, django_capture_on_commit_callbacks
):
    settings.RECSVC_MAX_CONCURRENT_IMPORTS = 1
    first = _upload(api, _events(3))  # its task is not run: the job stays queued
    assert first.status_code == 202
    files = _files(import_dir)

    problem = _problem(_upload(api, _events(3, prefix="g")), 429)
    assert problem["detail"] == (
        "This shop already has 1 import queued or running (at most 1 at a time); wait for it to finish."
    )
    assert ImportJob.objects.for_tenant(tenant).count() == 1
    assert _files(import_dir) == files  # nothing written
    # Another shop is not held back by this one.
    assert _upload(outsider_api, _events(3)).status_code == 202
    # Once the first ends, the shop may import again.
    ImportJob.objects.for_tenant(tenant).filter(pk=first.json()["id"]).update(status=ImportJob.Status.SUCCEEDED)
    assert _upload(api, _events(3, prefix="h")).status_code == 202


@pytest.mark.django_db
def test_stored_upload_bytes_per_shop_are_bounded(api, tenant, catalog, import_dir, settings, run_on_commit):
    settings.RECSVC_IMPORT_QUOTA_BYTES = 4_000
    failed = run_on_commit(api, tenant, b"id,title,id\n" + b"1,a,2\n" * 500, kind="products", content_type="text/csv")
    assert failed.status == ImportJob.Status.FAILED and failed.size_bytes == 3012  # its file is kept a while
    before = _files(import_dir)

    body = _events(10)
    assert len(body) < 4_000 < len(body) + failed.size_bytes
    problem = _problem(_upload(api, body), 413)
    assert problem["detail"] == (
        "This shop's stored uploads would exceed 4000 bytes (3012 bytes are held by queued, running and "
        "recently failed imports); wait for them to finish or expire."
    )
    assert ImportJob.objects.for_tenant(tenant).count() == 1 and _files(import_dir) == before
    # Once the failed job's file expires, the room is back; a succeeded import holds nothing.
    later = timezone.now() + dt.timedelta(days=settings.RECSVC_IMPORT_FAILED_RETENTION_DAYS, hours=1)
    assert import_jobs.sweep_imports(now=later).files_deleted == 1
    assert _files(import_dir) == []
    done = run_on_commit(api, tenant, body)
    assert done.status == ImportJob.Status.SUCCEEDED and done.file_path == ""
    assert run_on_commit(api, tenant, _events(10, prefix="k")).status == ImportJob.Status.SUCCEEDED


def test_the_per_file_limit_defaults_to_2_gib():
    from config import settings as config_settings

    assert config_settings.RECSVC_MAX_IMPORT_BYTES == 2 * 1024**3 or "RECSVC_MAX_IMPORT_BYTES" in os.environ


# --- bounded chunks ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chunks_end_at_a_byte_budget_as_well_as_a_row_count(api, tenant, catalog, import_dir, run_with):
    """A chunk ends once it holds its byte budget (so at most one line more), or its row count."""
    limits = imports.ChunkLimits(bytes=2_000)
    rows_per_chunk: list[int] = []

    def counting(job, rows):
        rows_per_chunk.append(len(rows))

    # JSON allows the padding: long lines that are valid events.
    lines = [_line(f"b{i:02d}")[:-1] + " " * 400 + "}\n" for i in range(20)]
    per_chunk = -(-2_000 // len(lines[0]))  # 4 lines of about 520 bytes
    job = run_with(api, tenant, "".join(lines).encode(), limits=limits, before_chunk=counting)
    assert job.status == ImportJob.Status.SUCCEEDED and job.rows_ok == 20
    assert rows_per_chunk == [per_chunk] * (20 // per_chunk)

    rows_per_chunk.clear()
    rows = [f"sku-{i:02d},Knife,{'d' * 400}\n" for i in range(20)]
    job = run_with(api, tenant, ("id,title,description\n" + "".join(rows)).encode(), limits=limits,
                   before_chunk=counting, kind="products", content_type="text/csv")
    assert job.status == ImportJob.Status.SUCCEEDED and job.rows_ok == 20
    per_chunk = -(-2_000 // len(rows[0]))
    assert rows_per_chunk == [per_chunk] * (20 // per_chunk)


# --- sweeping ended jobs' files ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sweep_fails_stuck_jobs_and_deletes_expired_failed_uploads(api, tenant, import_dir, settings):
    """The sweep takes its clock as an argument: the test moves it, nothing depends on today's date."""
    settings.RECSVC_MAX_CONCURRENT_IMPORTS = 10
    clock = timezone.now()
    ids = {name: _upload(api, _events(2, prefix=name)).json()["id"] for name in ("old", "new", "stuck", "waiting")}
    jobs = ImportJob.objects.for_tenant(tenant)
    jobs.filter(pk=ids["old"]).update(status=ImportJob.Status.FAILED, finished_at=clock - dt.timedelta(days=8))
    jobs.filter(pk=ids["new"]).update(status=ImportJob.Status.FAILED, finished_at=clock - dt.timedelta(days=6))
    jobs.filter(pk=ids["stuck"]).update(status=ImportJob.Status.RUNNING, started_at=clock - dt.timedelta(days=1))
    jobs.filter(pk=ids["waiting"]).update(created_at=clock - dt.timedelta(hours=1))
    paths = {name: _job(tenant, pk).file_path for name, pk in ids.items()}
    assert all(os.path.exists(path) for path in paths.values())

    summary = import_jobs.sweep_imports(now=clock)
    assert (summary.failed, summary.files_deleted) == (1, 1)
    assert not os.path.exists(paths["old"]) and _job(tenant, ids["old"]).file_path == ""
    assert os.path.exists(paths["new"])
    # Its worker was killed (hard time limit, lost): failed, so that it no longer holds the shop's slot.
    stuck = _job(tenant, ids["stuck"])
    assert stuck.status == ImportJob.Status.FAILED and "time limit" in stuck.error_message
    assert stuck.finished_at == clock and os.path.exists(paths["stuck"])
    assert _job(tenant, ids["waiting"]).status == ImportJob.Status.QUEUED and os.path.exists(paths["waiting"])

    # Two days on, the second failed job's file has expired; the queued job was never picked up: failed.
    summary = import_jobs.sweep_imports(now=clock + dt.timedelta(days=2))
    assert (summary.failed, summary.files_deleted) == (1, 1)
    assert not os.path.exists(paths["new"])
    waiting = _job(tenant, ids["waiting"])
    assert waiting.status == ImportJob.Status.FAILED and "was not started" in waiting.error_message

    summary = import_jobs.sweep_imports(now=clock + dt.timedelta(days=12))
    assert (summary.failed, summary.files_deleted) == (0, 2)
    assert _files(import_dir) == []
