"""Batch precompute: after an activation (and nightly) the answers of the tenant's recently active customers
are written into the answer cache, so their next GET /v1/recommendations is a cache read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from recs.models import Customer, Event
from serving import prepare
from serving import tasks as serving_tasks
from tenants.api_keys import create_api_key
from tests.factories import TenantFactory
from tests.serving.trained import forget_served_state, load_shop, train_active_version
from training.registry import lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(all_tenants, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    settings.RECSVC_RECS_CACHE_SECONDS = 600
    settings.RECSVC_PRECOMPUTE_MAX_CUSTOMERS = 12
    load_shop(tenant := TenantFactory(name="Shop A", slug="shop-a"))
    yield tenant
    forget_served_state()


@pytest.fixture
def recommend_api(shop) -> APIClient:
    _, raw = create_api_key(shop, name="test", scopes=["recommend"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_active_customers_are_the_most_recent_within_the_window(shop, settings):
    events = Event.objects.for_tenant(shop.pk)
    latest = max(events.values_list("ts", flat=True))

    chosen = prepare.active_customers(shop.pk, days=3, limit=5)

    assert len(chosen) == 5
    pks = dict(Customer.objects.for_tenant(shop.pk).values_list("external_id", "pk"))
    last_seen = [max(events.filter(customer_id=pks[c]).values_list("ts", flat=True)) for c in chosen]
    assert last_seen == sorted(last_seen, reverse=True)
    assert all(ts > latest - dt.timedelta(days=3) for ts in last_seen)
    assert prepare.active_customers(shop.pk, days=3, limit=0) == []


def test_activation_precomputes_answers_that_the_api_then_reads_from_the_cache(
    shop, recommend_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # activation's follow-up tasks run (eagerly)
        version = train_active_version(shop)
    customer = prepare.active_customers(shop.pk, days=7, limit=1)[0]

    with CaptureQueriesContext(connection) as queries:
        response = recommend_api.get("/v1/recommendations", {"customer_id": customer})

    assert response.status_code == 200, response.content
    assert response.json()["model_version"] == version.pk and len(response.json()["items"]) == 10
    # Answered from the precomputed cache entry: the funnel never ran (it reads the customer's events).
    assert not [q for q in queries.captured_queries if "recs_event" in q["sql"]]


def test_the_precompute_task_reports_what_it_did(shop, settings):
    version = train_active_version(shop)

    result = serving_tasks.precompute_recommendations.delay(shop.pk, version.pk).get()

    assert result["status"] == "done" and result["version"] == version.pk
    assert result["customers"] == result["written"] == 12  # capped by RECSVC_PRECOMPUTE_MAX_CUSTOMERS


def test_a_precompute_for_a_version_no_longer_active_does_nothing(shop):
    old = train_active_version(shop)
    train_active_version(shop)

    assert serving_tasks.precompute_recommendations.delay(shop.pk, old.pk).get()["status"] == "skipped"
    assert lifecycle.active_version(shop.pk).pk != old.pk


def test_the_nightly_beat_queues_one_precompute_per_tenant_with_an_active_version(shop, settings):
    train_active_version(shop)
    TenantFactory(name="Shop without a model", slug="shop-c")

    assert serving_tasks.precompute_all_tenants.delay().get() == 1
    entry = settings.CELERY_BEAT_SCHEDULE["serving-precompute-nightly"]
    assert entry["task"] == "serving.tasks.precompute_all_tenants"
    assert entry["schedule"].hour == {settings.RECSVC_PRECOMPUTE_HOUR_UTC}
