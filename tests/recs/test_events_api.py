import datetime as dt
import uuid

import msgspec
import pytest

from recs.models import Customer, Event
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _event(**overrides):
    body = {"type": "view", "customer_id": "c1", "product_id": "p1", "event_id": str(uuid.uuid4())}
    body.update(overrides)
    return body


@pytest.fixture
def product(tenant):
    return ProductFactory(tenant=tenant, external_id="p1")


def test_single_event_is_stored_and_retry_is_idempotent(api, tenant, product):
    body = _event(event_id="e-1", session_id="s1", timestamp="2024-05-01T10:00:00Z")
    first = api.post("/v1/events", body, format="json")
    assert first.status_code == 201, first.content
    again = api.post("/v1/events", body, format="json")
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    events = list(Event.objects.for_tenant(tenant))
    assert len(events) == 1
    assert events[0].ts == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    # The unknown customer became a placeholder.
    assert Customer.objects.for_tenant(tenant).get(external_id="c1").is_placeholder


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": 5}, "customer_id"),
        ({"type": "teleport"}, "type"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "2024-01-01T00:00:00"}, "timestamp"),  # no offset: ambiguous
        ({"colour": "red"}, "colour"),
        ({"type": "rating"}, "value"),
        ({"type": "rating", "value": 11}, "value"),
        ({"customer_id": "a\u0000b"}, "customer_id"),
        ({"product_id": "nope"}, "product_id"),
        ({"recommendation_id": "not-a-uuid"}, "recommendation_id"),
        ({"customer_id": "x" * 129}, "customer_id"),
    ],
)
def test_single_event_validation_is_a_problem_response(api, tenant, product, body, field):
    response = api.post("/v1/events", _event(**body), format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert field in problem["errors"], problem
    assert Event.objects.for_tenant(tenant).count() == 0


@pytest.mark.parametrize(
    "raw", [b'{"type": "view",', b'\xff\xfe{}', b'{"type":"\\ud800"}', b"[1,2", b""]
)
def test_malformed_bodies_are_rejected(api, tenant, raw):
    response = api.generic("POST", "/v1/events", raw, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert Event.objects.for_tenant(tenant).count() == 0


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/bulk"])
@pytest.mark.parametrize("body, status", [(b"", 400), (b'{"events": []}', 415)])
def test_a_missing_body_or_content_type_is_a_problem_not_a_crash(api, tenant, path, body, status):
    # With no body and no Content-Type DRF parses nothing and hands the view an empty dict, not bytes.
    response = api.generic("POST", path, body, content_type="")
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    if status == 400:
        assert "Content-Type: application/json" in response.json()["detail"]
    assert Event.objects.for_tenant(tenant).count() == 0


def test_bulk_stores_valid_rows_and_reports_invalid_ones(api, tenant, product):
    rows = [
        _event(event_id="a"),
        _event(event_id="b", type="nope"),
        _event(event_id="a"),  # duplicate inside the batch
        _event(event_id="c", product_id="ghost"),
        "not an object",
        _event(event_id="d", type="purchase", quantity=2, price=9.5),
    ]
    response = api.post("/v1/events/bulk", {"events": rows}, format="json")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["stored"] == 2
    assert [e["row"] for e in result["errors"]] == [1, 2, 3, 4]
    assert "event_id" in result["errors"][1]["errors"]
    assert "product_id" in result["errors"][2]["errors"]
    stored = set(Event.objects.for_tenant(tenant).values_list("event_id", flat=True))
    assert stored == {"a", "d"}


def test_bulk_with_no_valid_row_stores_nothing_and_is_400(api, tenant, product):
    response = api.post("/v1/events/bulk", {"events": [_event(type="??"), _event(customer_id="")]}, format="json")
    assert response.status_code == 400
    assert len(response.json()["rows"]) == 2
    assert Event.objects.for_tenant(tenant).count() == 0
    assert Customer.objects.for_tenant(tenant).count() == 0


def test_bulk_retry_counts_duplicates(api, tenant, product):
    rows = [_event(event_id=f"e{i}") for i in range(50)]
    assert api.post("/v1/events/bulk", {"events": rows}, format="json").json()["stored"] == 50
    again = api.post("/v1/events/bulk", {"events": rows}, format="json").json()
    assert (again["stored"], again["duplicates"]) == (0, 50)
    assert Event.objects.for_tenant(tenant).count() == 50


def test_bulk_size_limits(api, tenant, product, settings):
    settings.RECSVC_MAX_BULK_ROWS = 3
    response = api.post("/v1/events/bulk", {"events": [_event() for _ in range(4)]}, format="json")
    assert response.status_code == 400
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    big = msgspec.json.encode({"events": [_event(session_id="x" * 100) for _ in range(20)]})
    response = api.generic("POST", "/v1/events/bulk", big, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert Event.objects.for_tenant(tenant).count() == 0


def test_custom_event_type_with_weight(api, tenant, product):
    assert api.post("/v1/events", _event(type="wishlist"), format="json").status_code == 400
    response = api.put("/v1/event-types/wishlist", {"weight": 3.5}, format="json")
    assert response.status_code == 200, response.content
    assert api.post("/v1/events", _event(type="wishlist"), format="json").status_code == 201
    listed = {row["name"]: row for row in api.get("/v1/event-types").json()}
    assert listed["wishlist"]["weight"] == 3.5 and not listed["wishlist"]["builtin"]
    assert listed["purchase"]["builtin"]


def test_events_list_filters_by_customer(api, tenant, product):
    api.post("/v1/events/bulk", {"events": [_event(customer_id="c1"), _event(customer_id="c2")]}, format="json")
    listed = api.get("/v1/events", {"customer": "c2"}).json()["results"]
    assert [e["customer_id"] for e in listed] == ["c2"]
