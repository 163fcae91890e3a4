"""JSON nested deeper than the interpreter's recursion limit is a malformed body (400), never a 500.

100,000 brackets are 200 KB, well under the body limits: msgspec recurses once per level and raises
RecursionError past Python's limit."""

from __future__ import annotations

import json

import pytest

from recs.models import ImportJob, Product

pytestmark = pytest.mark.django_db
DEPTH = 100_000
DEEP = b"[" * DEPTH + b"]" * DEPTH


def _problem(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/problem+json")
    return response.json()


@pytest.mark.parametrize(
    "body",
    [
        b'{"events":' + DEEP + b"}",
        b'{"events":[' + DEEP + b"]}",
        b'{"events":[{"type":' + DEEP + b"}]}",
        b'{"events":[{"type":"view","customer_id":"c","product_id":"p"},' + DEEP + b"]}",
    ],
    ids=["events-value", "row", "field", "second-row"],
)
def test_bulk_events_nested_100000_deep_answers_400(ingest_api, body):
    _problem(ingest_api.generic("POST", "/v1/events/bulk", body, content_type="application/json"))


def test_single_event_nested_deep_answers_400(ingest_api):
    response = ingest_api.generic("POST", "/v1/events", b'{"x":' + DEEP + b"}", content_type="application/json")
    _problem(response)


def test_routes_parsed_by_the_default_json_parser_answer_400(api):
    """Every other JSON route goes through core.parsers.StrictJSONParser (untyped decode)."""
    body = b'{"id":"p1","title":' + DEEP + b"}"
    problem = _problem(api.generic("POST", "/v1/products", body, content_type="application/json"))
    assert "nested too deeply" in problem["detail"]


def test_a_deep_ndjson_line_is_a_row_error_and_the_rest_loads(
    api, tenant, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.RECSVC_IMPORT_DIR = tmp_path
    good = json.dumps({"id": "p-ok", "title": "fine"}).encode()
    deep = b'{"id":"p-deep","title":"x","attributes":{"a":' + DEEP + b"}}"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.generic(
            "POST", "/v1/imports?kind=products", deep + b"\n" + good + b"\n", content_type="application/x-ndjson"
        )
    assert response.status_code == 202, response.content[:300]
    job = ImportJob.objects.for_tenant(tenant).get(pk=response.json()["id"])
    assert job.status == ImportJob.Status.SUCCEEDED, (job.status, job.error_message)
    assert (job.rows_ok, job.rows_failed) == (1, 1), job.errors
    assert list(Product.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["p-ok"]
