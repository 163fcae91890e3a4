"""Event ingestion as production runs it: outside any transaction (not inside a test's), where a single
event is one statement that commits itself, and the customers' cache generations are bumped and the usage
meter counted after the commit (sent with the process's next admission: usage.record_soon)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recs.models import Customer, Event
from serving import cache as answer_cache
from serving.cache import customer_generation
from tenants.billing import usage
from tenants.context import dangerously_all_tenants
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _event(**overrides) -> dict:
    return {"type": "view", "customer_id": "c1", "product_id": "p1", "event_id": str(uuid.uuid4()), **overrides}


@pytest.fixture
def product(tenant):
    return ProductFactory(tenant=tenant, external_id="p1")


@pytest.fixture(params=[False, True], ids=["sync-commit", "async-commit"])
def commit_mode(request, settings):
    settings.RECSVC_SINGLE_EVENT_ASYNC_COMMIT = request.param
    return request.param


def _events(tenant) -> list[tuple[str, str]]:
    with dangerously_all_tenants():
        return list(Event.objects.for_tenant(tenant).order_by("id").values_list("event_id", "customer__external_id"))


def _counted(tenant) -> int | None:
    usage.flush_pending()  # what this process counted waits for its next admission
    return usage.live(tenant.pk, usage.EVENTS)


def test_a_single_event_commits_counts_and_invalidates_the_customer(api, tenant, product, commit_mode):
    assert not connection.in_atomic_block  # what production sees: no transaction around the request
    before = customer_generation(tenant.pk, "visitor-1")
    response = api.post("/v1/events", _event(event_id="e1", customer_id="visitor-1"), format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "rejected": 0, "errors": []}
    assert _events(tenant) == [("e1", "visitor-1")]
    with dangerously_all_tenants():
        assert Customer.objects.for_tenant(tenant).get(external_id="visitor-1").is_placeholder
    assert customer_generation(tenant.pk, "visitor-1") > before

    # A retry stores nothing, counts nothing, and is answered 200.
    again = api.post("/v1/events", _event(event_id="e1", customer_id="visitor-1"), format="json")
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert usage.live(tenant.pk, usage.EVENTS) == 1
    assert _counted(tenant) == 1


def test_an_unknown_product_leaves_nothing_behind(api, tenant, product, commit_mode):
    response = api.post("/v1/events", _event(product_id="ghost", customer_id="never-seen"), format="json")
    assert response.status_code == 400
    assert "product_id" in response.json()["errors"]
    assert _events(tenant) == []
    with dangerously_all_tenants():
        assert not Customer.objects.for_tenant(tenant).filter(external_id="never-seen").exists()
    assert usage.live(tenant.pk, usage.EVENTS) == 0


def test_a_known_customer_is_reused_and_other_tenants_are_untouched(api, outsider_api, tenant, other_tenant, product):
    ProductFactory(tenant=other_tenant, external_id="p1")
    assert api.post("/v1/events", _event(customer_id="c1"), format="json").status_code == 201
    assert api.post("/v1/events", _event(customer_id="c1"), format="json").status_code == 201
    assert outsider_api.post("/v1/events", _event(customer_id="c1"), format="json").status_code == 201
    with dangerously_all_tenants():
        assert Customer.objects.for_tenant(tenant).filter(external_id="c1").count() == 1
        assert Customer.objects.for_tenant(other_tenant).filter(external_id="c1").count() == 1
    assert len(_events(tenant)) == 2 and len(_events(other_tenant)) == 1
    assert _counted(tenant) == 2 and usage.live(other_tenant.pk, usage.EVENTS) == 1


def test_a_single_event_costs_one_statement(api, tenant, product, commit_mode):
    assert api.post("/v1/events", _event(), format="json").status_code == 201  # the key's first use is recorded
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/v1/events", _event(), format="json").status_code == 201
    statements = [q["sql"] for q in queries.captured_queries]
    # The connection still holds this shop's row-level-security setting from the request before, so the
    # backend (tenants/postgres) sends nothing else.
    assert len(statements) == 1, statements
    assert connection.applied_tenant_setting == str(tenant.pk)
    assert ("synchronous_commit" in statements[0]) is commit_mode


def test_a_bulk_batch_counts_once_and_invalidates_every_customer(api, tenant, product):
    rows = [_event(customer_id=f"c{i % 7}") for i in range(40)] + [_event(product_id="ghost")]
    response = api.post("/v1/events/bulk", {"events": rows}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["stored"], response.json()["rejected"]) == (40, 1)
    assert _counted(tenant) == 40
    assert all(customer_generation(tenant.pk, f"c{i}") > 0 for i in range(7))
    # Bulk requests always wait for the WAL flush, whatever the single-event setting.
    with CaptureQueriesContext(connection) as queries:
        api.post("/v1/events/bulk", {"events": [_event() for _ in range(150)]}, format="json")
    assert not any("synchronous_commit" in q["sql"] for q in queries.captured_queries)


def test_a_single_events_retry_is_answered_200(api, tenant, product):
    event = _event()
    first = api.post("/v1/events", event, format="json")
    retry = api.post("/v1/events", event, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json() == {"received": 1, "stored": 1, "duplicates": 0, "rejected": 0, "errors": []}
    assert retry.json()["duplicates"] == 1
    assert _events(tenant) == [(event["event_id"], "c1")]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b'{"type": "view", "customer_id": "c1", "product_id": "ghost"}', "application/json", 400, "product_id"),
        (b'{"type": "view", "customer_id": "c1"}', "application/json", 400, "product_id"),
        (b'{"type": "view", "customer_id": "c1", "product_id": "p1", "x": 1}', "application/json", 400, "x"),
        (b'{"type": "view", "customer_id": "c1", "product_id": "p1"', "application/json", 400, None),
        (b'{"type": "view", "customer_id": "c1", "product_id": "p1"}', "text/plain", 415, None),
    ],
    ids=["unknown-product", "missing-field", "unknown-field", "malformed", "not-json"],
)
def test_an_event_that_cannot_be_stored_is_a_problem_counted_once_against_the_rate_limit(
    api, tenant, product, settings, body, content_type, status, field
):
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 2
    refused = api.generic("POST", "/v1/events", body, content_type=content_type)
    assert refused.status_code == status, refused.content
    assert refused["Content-Type"] == "application/problem+json"
    if field:
        assert field in str(refused.json())
    assert _events(tenant) == [] and usage.live(tenant.pk, usage.EVENTS) in (0, None)
    assert api.post("/v1/events", _event(), format="json").status_code == 201  # the limit's second request
    assert api.post("/v1/events", _event(), format="json").status_code == 429


def test_a_cached_answer_of_the_events_customer_is_stale_once_the_event_is_answered(api, tenant, product, settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 600
    lookup = answer_cache.lookup_answer(tenant.pk, "recommend", {}, customer="visitor-1")
    answer_cache.store_answer(lookup, {"items": [{"id": "p1"}]})
    assert answer_cache.lookup_answer(tenant.pk, "recommend", {}, customer="visitor-1").answer is not None
    assert api.post("/v1/events", _event(customer_id="visitor-1"), format="json").status_code == 201
    assert answer_cache.lookup_answer(tenant.pk, "recommend", {}, customer="visitor-1").answer is None
