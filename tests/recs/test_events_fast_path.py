"""Event ingestion as production runs it: outside any transaction (not inside a test's), where a single
event is one statement that commits itself, the customers' cache generations are bumped after the commit
(a single event's before it, with a pending marker: serving.cache.PENDING_MS), and the usage meter's count
rides on the process's next admission (usage.record_soon)."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recs.ingest import events as ingest_events
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
    usage.flush_pending()  # what this process counted waits for its next admission round trip
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

    # A retry stores nothing, counts nothing, and is answered 200; its admission sent the first one's count.
    # (Its customer was bumped before the store found the duplicate: one cache miss for that customer.)
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


def test_a_single_event_is_stored_before_drf_and_its_retry_is_answered_200(api, tenant, product):
    event = _event()
    first = api.post("/v1/events", event, format="json")
    retry = api.post("/v1/events", event, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert "Allow" not in first  # answered by the fast path (DRF's views add Allow)
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
def test_what_the_fast_path_cannot_store_is_drfs_problem_and_counted_once(
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


@pytest.mark.skipif(not settings.REDIS_URL, reason="the bump rides on the admission's Redis round trip")
@pytest.mark.parametrize("commit_took_too_long", [False, True])
def test_a_single_events_customer_is_bumped_before_the_commit_and_again_only_after_a_slow_one(
    api, tenant, product, monkeypatch, commit_took_too_long
):
    after_commit = []
    bump = ingest_events.bump_customer_generation

    def recorded_bump(tenant_id, customers):  # still bumps in Redis: only what was asked is recorded
        after_commit.append(set(customers))
        bump(tenant_id, customers)

    monkeypatch.setattr(ingest_events, "bump_customer_generation", recorded_bump)
    if commit_took_too_long:  # the marker would expire before the commit: bump again after it
        monkeypatch.setattr(ingest_events, "pending_bump_covers", lambda sent_at: False)
    before = customer_generation(tenant.pk, "visitor-1")
    response = api.post("/v1/events", _event(customer_id="visitor-1"), format="json")
    assert response.status_code == 201, response.content
    assert customer_generation(tenant.pk, "visitor-1") > before  # bumped on the admission's round trip
    assert answer_cache.storable_answer_key(tenant.pk, "recommend", {}, customer="visitor-1") is None  # pending
    assert after_commit == ([{"visitor-1"}] if commit_took_too_long else [set()])
