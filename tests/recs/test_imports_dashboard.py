"""The Imports page's upload: owners upload through the same function as POST /v1/imports (same job, same
per-shop limits), members and other shops cannot, and the page follows a job's progress as JSON."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from recs.models import Event, ImportJob
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

LINES = [
    {"type": "view", "customer_id": "c1", "product_id": "p1", "timestamp": "2024-05-01T10:00:00Z", "event_id": "e1"},
    {"type": "view", "customer_id": "c2", "product_id": "p1", "timestamp": "2024-05-01T11:00:00Z", "event_id": "e2"},
]
BODY = ("\n".join(json.dumps(line) for line in LINES) + "\n").encode()


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def upload(client, body: bytes = BODY, name: str = "events.ndjson", kind: str = "events", **headers):
    return client.post("/imports/upload", {"kind": kind, "file": SimpleUploadedFile(name, body)}, headers=headers)


def files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def product(tenant):
    return ProductFactory(tenant=tenant, external_id="p1")


def test_owner_uploads_a_file_that_becomes_an_import_job(owner, tenant, product, import_dir,
                                                         django_capture_on_commit_callbacks):
    client = client_for(owner)
    page = client.get("/imports").content.decode()
    assert 'enctype="multipart/form-data"' in page and 'action="/imports/upload"' in page

    with django_capture_on_commit_callbacks(execute=True):  # the queued job runs (eager tasks) on commit
        response = upload(client)
    assert response.status_code == 302 and response["Location"] == "/imports"
    job = ImportJob.objects.for_tenant(tenant).get()
    assert (job.kind, job.format, job.size_bytes, job.status) == ("events", "ndjson", len(BODY), "succeeded")
    assert Event.objects.for_tenant(tenant).count() == 2
    assert files(import_dir) == []  # a finished import removes its file, as for the API
    page = client.get("/imports").content.decode()
    assert "events.ndjson is uploaded: import #" in page and f'data-import="/imports/{job.pk}/progress"' in page

    state = client.get(f"/imports/{job.pk}/progress").json()
    assert state == {"id": job.pk, "status": "succeeded", "status_label": "Succeeded", "progress": 1.0, "rows_ok": 2,
                     "rows_duplicate": 0, "rows_failed": 0, "error_message": "", "ended": True,
                     "progress_url": f"/imports/{job.pk}/progress"}


def test_the_pages_script_gets_the_queued_job_as_json(owner, tenant, import_dir):
    response = upload(client_for(owner), b"id,title\nsku-1,Mug\n", name="catalog.CSV", kind="products",
                      Accept="application/json")
    assert response.status_code == 202
    job = ImportJob.objects.for_tenant(tenant).get()
    assert (job.kind, job.format, job.status) == ("products", "csv", "queued")  # queued once the upload commits
    assert response.json()["progress_url"] == f"/imports/{job.pk}/progress" and response.json()["ended"] is False
    assert [p.read_bytes() for p in files(import_dir)] == [b"id,title\nsku-1,Mug\n"]


def test_members_and_anonymous_visitors_cannot_upload(member, tenant, import_dir, client):
    member_client = client_for(member)
    assert "upload-form" not in member_client.get("/imports").content.decode()
    assert upload(member_client).status_code == 403
    anonymous = upload(client)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login")
    assert not ImportJob.objects.for_tenant(tenant).exists() and files(import_dir) == []


def test_another_shops_owner_neither_uploads_here_nor_sees_progress(owner, outsider, tenant, other_tenant, import_dir):
    upload(client_for(owner), Accept="application/json")
    job = ImportJob.objects.for_tenant(tenant).get()
    outsider_client = client_for(outsider)
    assert outsider_client.get(f"/imports/{job.pk}/progress").status_code == 404
    assert f"#{job.pk}" not in outsider_client.get("/imports").content.decode()
    # What they upload lands in their own shop.
    assert upload(outsider_client, Accept="application/json").status_code == 202
    assert ImportJob.objects.for_tenant(tenant).count() == 1
    assert ImportJob.objects.for_tenant(other_tenant).count() == 1


def test_the_upload_needs_the_csrf_token(owner, tenant, import_dir):
    response = upload(client_for(owner, enforce_csrf_checks=True))
    assert response.status_code == 403
    assert not ImportJob.objects.for_tenant(tenant).exists() and files(import_dir) == []


def test_the_apis_per_shop_limits_hold_for_the_dashboard(owner, tenant, api, import_dir, settings):
    settings.RECSVC_MAX_CONCURRENT_IMPORTS = 1
    assert api.generic("POST", "/v1/imports?kind=events", BODY, content_type="application/x-ndjson").status_code == 202
    client = client_for(owner)
    refused = upload(client, Accept="application/json")
    assert refused.status_code == 429 and "at most 1 at a time" in refused.json()["error"]
    assert upload(client).status_code == 302  # without the page's script: back to the page, which says why
    assert "at most 1 at a time" in client.get("/imports").content.decode()
    assert ImportJob.objects.for_tenant(tenant).count() == 1 and len(files(import_dir)) == 1


@pytest.mark.parametrize(
    ("body", "name", "status", "message"),
    [
        (b"x" * 2048, "big.ndjson", 413, "Imports are limited to 1.0\xa0KB"),
        (b"", "empty.ndjson", 400, "empty.ndjson: The upload is empty."),
        (BODY, "events.xlsx", 400, "Name the file .csv"),
    ],
)
def test_refused_uploads_leave_no_job_and_no_file(owner, tenant, import_dir, settings, body, name, status, message):
    settings.RECSVC_MAX_IMPORT_BYTES = 1024
    response = upload(client_for(owner), body, name=name, Accept="application/json")
    assert response.status_code == status
    answer = response.json()
    assert message in answer["error"] + json.dumps(answer["errors"], ensure_ascii=False)
    assert not ImportJob.objects.for_tenant(tenant).exists() and files(import_dir) == []


def test_a_body_declared_too_large_is_refused_before_it_is_read(owner, tenant, import_dir, settings):
    settings.RECSVC_MAX_IMPORT_BYTES = 1024
    response = client_for(owner).generic(
        "POST", "/imports/upload", b"", content_type="multipart/form-data; boundary=x",
        headers={"Content-Length": str(10**9), "Accept": "application/json"},
    )
    assert response.status_code == 413
    assert not ImportJob.objects.for_tenant(tenant).exists()
