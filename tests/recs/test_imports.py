"""Streaming bulk imports: upload (POST /v1/imports), the job run by a real Celery worker, progress,
row errors with line numbers, idempotent re-runs, CSV catalog and event files, and hostile uploads."""

from __future__ import annotations

import itertools
import json
import time

import pytest

from recs.ingest import imports
from recs.models import Event, ImportJob, Product
from tenants.context import tenant_context
from tests.factories import ProductFactory

NDJSON = "application/x-ndjson"
POLL_TIMEOUT_S = 60


def _line(**fields) -> str:
    event = {"type": "view", "customer_id": "c1", "product_id": "p1", "timestamp": "2024-05-01T10:00:00Z"}
    event.update(fields)
    return json.dumps(event, ensure_ascii=False)


def _upload(api, body: bytes, kind: str = "events", content_type: str = NDJSON):
    return api.generic("POST", f"/v1/imports?kind={kind}", body, content_type=content_type)


def _accepted(response) -> dict:
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] in {"queued", "running", "succeeded"}
    return job


def _wait(api, job_id: int) -> tuple[dict, list[float]]:
    """Poll the job until it ends (bounded); return it and the progress values seen on the way."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    seen: list[float] = []
    while True:
        response = api.get(f"/v1/imports/{job_id}")
        assert response.status_code == 200, response.content
        job = response.json()
        seen.append(job["progress"])
        if job["status"] in {"succeeded", "failed"}:
            return job, seen
        assert time.monotonic() < deadline, f"import still {job['status']} after {POLL_TIMEOUT_S} s: {job}"
        time.sleep(0.1)


def _problem(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def _files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def catalog(tenant):
    return [ProductFactory(tenant=tenant, external_id=sku) for sku in ("p1", "p2")]


# --- the real worker ------------------------------------------------------------------------------------


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_ndjson_import_runs_in_the_worker_reports_bad_lines_and_reruns_idempotently(
    celery_worker, api, tenant, catalog, import_dir
):
    lines = [
        _line(event_id="e1"),  # line 1
        _line(event_id="e2", type="purchase", product_id="p2", quantity=2, price=9.5),  # 2
        "",  # 3: blank lines are skipped, but counted as lines
        '{"type": "view", "customer_id": "c1",',  # 4: malformed JSON
        _line(event_id="e3", product_id="ghost"),  # 5: unknown product
        _line(event_id="e1", customer_id="c2"),  # 6: duplicate event_id inside the file
        _line(event_id="e4", customer_id="new-visitor"),  # 7
    ]
    body = ("\n".join(lines) + "\n").encode()
    job = _accepted(_upload(api, body))
    assert job["size_bytes"] == len(body)

    done, progress = _wait(api, job["id"])
    assert done["status"] == "succeeded", done
    assert (done["rows_ok"], done["rows_failed"], done["rows_duplicate"]) == (3, 3, 0)
    assert done["progress"] == 1.0 and done["processed_bytes"] == len(body)
    assert progress == sorted(progress)
    assert [(e["line"], e["row"], sorted(e["errors"])) for e in done["errors"]] == [
        (4, 2, ["non_field_errors"]),
        (5, 3, ["product_id"]),
        (6, 4, ["event_id"]),
    ]
    stored = set(Event.objects.for_tenant(tenant).values_list("event_id", flat=True))
    assert stored == {"e1", "e2", "e4"}
    assert _files(import_dir) == []  # a finished import removes its upload

    again, _ = _wait(api, _accepted(_upload(api, body))["id"])
    assert again["status"] == "succeeded", again
    assert (again["rows_ok"], again["rows_failed"], again["rows_duplicate"]) == (0, 3, 3)
    assert Event.objects.for_tenant(tenant).count() == 3


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_worker_import_is_invisible_to_other_tenants(celery_worker, api, outsider_api, tenant, catalog, import_dir):
    job, _ = _wait(api, _accepted(_upload(api, (_line(event_id="x1") + "\n").encode()))["id"])
    assert job["status"] == "succeeded"
    assert outsider_api.get(f"/v1/imports/{job['id']}").status_code == 404
    assert outsider_api.get("/v1/imports").json()["results"] == []


# --- file handling, in process (eager tasks) ------------------------------------------------------------


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the import the upload enqueues (eager: in this process, when the request commits)."""

    def upload(api, body: bytes, **kwargs) -> dict:
        with django_capture_on_commit_callbacks(execute=True):
            job = _accepted(_upload(api, body, **kwargs))
        done, _ = _wait(api, job["id"])
        return done

    return upload


@pytest.fixture
def run_with(django_capture_on_commit_callbacks):
    """Upload through the API, then run the queued job as the worker's task does, with the chunk limits and
    the observer the test gives."""

    def upload(api, tenant, body: bytes, *, limits=imports.DEFAULT_LIMITS, before_chunk=None, **kwargs) -> dict:
        with django_capture_on_commit_callbacks(execute=False):
            job_id = _accepted(_upload(api, body, **kwargs))["id"]
        with tenant_context(tenant.pk):
            job = ImportJob.objects.for_tenant(tenant).get(pk=job_id)
            imports.run_import(job, limits=limits, before_chunk=before_chunk)
        return api.get(f"/v1/imports/{job_id}").json()

    return upload


@pytest.mark.django_db
def test_csv_products_import_splits_category_path_and_tags(api, tenant, import_dir, run_on_commit):
    body = (
        b"id,title,category_path,tags,price,currency,stock,description\n"
        b"sku-1,Chef knife,Home > Kitchen > Knives,sale|new,49.90,EUR,3,\"Sharp,\nvery sharp\"\n"
        b"sku-2,Cutting board,Home > Kitchen,,12.00,EUR,,\n"
        b"sku-3,Broken,Home,,not-a-price,EUR,1,\n"
    )
    job = run_on_commit(api, body, kind="products", content_type="text/csv")
    assert job["status"] == "succeeded", job
    assert (job["rows_ok"], job["rows_failed"]) == (2, 1)
    # The quoted description spans lines 2-3, so sku-3 starts on line 5.
    assert [(e["row"], e["line"], list(e["errors"])) for e in job["errors"]] == [(2, 5, ["price"])]
    knife = Product.objects.for_tenant(tenant).get(external_id="sku-1")
    assert knife.category_path == ["Home", "Kitchen", "Knives"]
    assert knife.tags == ["sale", "new"]
    assert knife.description == "Sharp,\nvery sharp"
    board = Product.objects.for_tenant(tenant).get(external_id="sku-2")
    assert (board.tags, board.stock) == ([], None)


@pytest.mark.django_db
def test_csv_events_import_with_bom_and_bad_rows(api, tenant, catalog, import_dir, run_on_commit):
    body = (
        "\ufeffevent_id,type,customer_id,product_id,session_id,timestamp,quantity,price\n"
        "c-1,view,c1,p1,s1,2024-05-01T10:00:00Z,,\n"
        "c-2,purchase,c1,p2,s1,2024-05-01T10:01:00Z,2,19.90\n"
        "c-3,teleport,c1,p1,s1,2024-05-01T10:02:00Z,,\n"
        "c-4,view,c1,p1,s1,2024-05-01T10:03:00Z,,,surplus\n"
        "\n"
        "c-5,view,c2,p2,,1714557900,,\n"
    ).encode()
    job = run_on_commit(api, body, content_type="text/csv; header=present; charset=UTF-8")
    assert job["status"] == "succeeded", job
    assert (job["rows_ok"], job["rows_failed"]) == (3, 2)
    assert [(e["line"], list(e["errors"])) for e in job["errors"]] == [(4, ["type"]), (5, ["non_field_errors"])]
    purchase = Event.objects.for_tenant(tenant).get(event_id="c-2")
    assert (purchase.quantity, str(purchase.price), purchase.session_id) == (2, "19.90", "s1")
    assert Event.objects.for_tenant(tenant).get(event_id="c-5").ts.isoformat() == "2024-05-01T10:05:00+00:00"


@pytest.mark.django_db
def test_invalid_utf8_lines_are_row_errors_and_the_rest_loads(api, tenant, catalog, import_dir, run_on_commit):
    bad = _line(event_id="u3", session_id="XX").encode().replace(b"XX", b"\xff\xfe")
    ndjson = b"\n".join([
        _line(event_id="u1").encode(), _line(event_id="u2", session_id="café").encode(), bad,
        _line(event_id="u4").encode(),
    ]) + b"\n"
    job = run_on_commit(api, ndjson)
    assert job["status"] == "succeeded", job
    assert (job["rows_ok"], job["rows_failed"]) == (3, 1)
    assert [(e["line"], e["errors"]) for e in job["errors"]] == [
        (3, {"non_field_errors": [f"The line is not valid UTF-8 (byte {bad.index(255) + 1})."]})
    ]
    assert Event.objects.for_tenant(tenant).get(event_id="u2").session_id == "café"

    csv_body = b"event_id,type,customer_id,product_id\nv1,view,c1,p1\nv2,view,c\xe9,p1\nv3,view,c1,p2\n"
    job = run_on_commit(api, csv_body, content_type="text/csv")
    assert job["status"] == "succeeded", job
    assert [(e["line"], e["errors"]) for e in job["errors"]] == [
        (3, {"non_field_errors": ["The row is not valid UTF-8."]})
    ]
    assert job["rows_ok"] == 2


@pytest.mark.django_db
def test_unreadable_csv_header_fails_the_job_with_a_clear_message(api, tenant, import_dir, run_on_commit):
    job = run_on_commit(api, b"event_id,typ\xe9\nv1,view\n", content_type="text/csv")
    assert job["status"] == "failed"
    assert job["error_message"] == "The CSV header (line 1) is not valid UTF-8."
    job = run_on_commit(api, b"id,title,id\n1,a,2\n", kind="products", content_type="text/csv")
    assert job["status"] == "failed"
    assert job["error_message"] == "The CSV header repeats the column(s) id."
    assert Product.objects.for_tenant(tenant).count() == 0


@pytest.mark.django_db
def test_hostile_values_become_row_errors_not_a_failed_chunk(api, tenant, catalog, import_dir, run_with):
    body = "\n".join([
        _line(event_id="h1"),
        _line(event_id="h2", type="purchase", price=1e10),  # would overflow numeric(12, 2)
        _line(event_id="h3", type="vi\u0000ew"),  # NUL quoted in the message: jsonb cannot store it raw
        _line(event_id="h4", session_id="x" * 400),  # longer than MAX_LINE_BYTES
        _line(event_id="h5"),
    ]).encode()
    job = run_with(api, tenant, body, limits=imports.ChunkLimits(line_bytes=300))
    assert job["status"] == "succeeded", job
    assert (job["rows_ok"], job["rows_failed"]) == (2, 3)
    errors = {e["line"]: e["errors"] for e in job["errors"]}
    assert list(errors) == [2, 3, 4]
    assert "price" in errors[2]
    assert "\\u0000" in errors[3]["type"][0]
    assert errors[4] == {"non_field_errors": ["The line is longer than 300 bytes."]}
    assert set(Event.objects.for_tenant(tenant).values_list("event_id", flat=True)) == {"h1", "h5"}


@pytest.mark.django_db
def test_progress_is_recorded_after_every_chunk(api, tenant, catalog, import_dir, run_with):
    """A long import shows its progress while it runs: sampled through the API before each chunk loads."""
    seen: list[float] = []

    def sampling(job, rows):
        seen.append(api.get(f"/v1/imports/{job.pk}").json()["progress"])

    body = "".join(_line(event_id=f"p{i}") + "\n" for i in range(50)).encode()
    job = run_with(api, tenant, body, limits=imports.ChunkLimits(rows=10), before_chunk=sampling)
    assert job["status"] == "succeeded" and job["rows_ok"] == 50
    assert len(seen) == 5
    assert seen[0] == 0.0 and all(a < b for a, b in itertools.pairwise(seen)) and seen[-1] < 1.0
    assert job["progress"] == 1.0


# --- refused uploads ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "body", "content_type", "field"),
    [
        ("kind=orders", b'{"a": 1}\n', NDJSON, "kind"),
        ("", b'{"a": 1}\n', NDJSON, "kind"),
        ("kind=events", b'{"a": 1}\n', "application/json", "content_type"),
        ("kind=events", b'{"a": 1}\n', "text/csv; charset=latin-1", "content_type"),
        ("kind=events", b"", NDJSON, "file"),
    ],
    ids=["unknown-kind", "no-kind", "wrong-content-type", "not-utf8-charset", "empty-body"],
)
def test_bad_uploads_are_400_problems_and_leave_nothing(api, tenant, import_dir, query, body, content_type, field):
    response = api.generic("POST", f"/v1/imports?{query}", body, content_type=content_type)
    assert field in _problem(response)["errors"]
    assert ImportJob.objects.for_tenant(tenant).count() == 0
    assert _files(import_dir) == []


@pytest.mark.django_db
def test_upload_over_the_limit_is_413_and_leaves_no_file(api, tenant, import_dir, settings):
    settings.RECSVC_MAX_IMPORT_BYTES = 1024
    body = ("".join(_line(event_id=f"big{i}") + "\n" for i in range(30))).encode()
    assert len(body) > 1024
    _problem(_upload(api, body), 413)
    assert ImportJob.objects.for_tenant(tenant).count() == 0
    assert _files(import_dir) == []
    # Just under the limit is accepted.
    assert _upload(api, body[:1000].rsplit(b"\n", 1)[0] + b"\n").status_code == 202


@pytest.mark.django_db
def test_upload_needs_the_ingest_scope(recommend_api, tenant, import_dir):
    _problem(_upload(recommend_api, b'{"a": 1}\n'), 403)
    assert _files(import_dir) == []
