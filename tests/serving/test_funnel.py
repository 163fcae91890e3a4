"""The funnel on a tiny trained tenant: real PostgreSQL rows, a real model, a real FAISS index."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.utils import timezone

from recs.ingest.events import ingest_events
from recs.models import Customer, Event, Product
from serving import registry_cache
from serving.funnel import Reason, popular_items, purchased_products, recommend, similar_items
from tests.factories import EventFactory, ProductFactory, TenantFactory
from tests.serving.trained import load_shop, train_active_version
from training.registry import lifecycle

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(all_tenants, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    tenant = TenantFactory()
    load_shop(tenant)
    version = train_active_version(tenant)
    yield tenant, version
    registry_cache.clear()


def _buyer(tenant) -> Customer:
    """A customer with purchases (so the already-bought filter has something to do)."""
    pk = Event.objects.for_tenant(tenant).filter(event_type="purchase").values_list("customer_id", flat=True)[0]
    return Customer.objects.for_tenant(tenant).get(pk=pk)


def _pks(rec) -> list[int]:
    return [item.product_pk for item in rec.items]


def test_k_distinct_sellable_products_never_bought_before(shop):
    tenant, version = shop
    customer = _buyer(tenant)
    bought = set(purchased_products(tenant.pk, customer.pk).tolist())
    assert bought

    rec = recommend(tenant.pk, customer.pk, k=10)

    assert (rec.reason, rec.model_version) == (Reason.PERSONALIZED, version.pk)
    pks = _pks(rec)
    assert len(pks) == len(set(pks)) == 10
    assert not set(pks) & bought
    products = Product.objects.for_tenant(tenant).filter(pk__in=pks)
    assert all(p.in_stock for p in products) and products.count() == 10
    scores = [item.score for item in rec.items]
    assert scores == sorted(scores, reverse=True)


def test_stock_changes_apply_to_the_next_request(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    first = _pks(recommend(tenant.pk, customer.pk, k=5))
    products = Product.objects.for_tenant(tenant)
    products.filter(pk=first[0]).update(stock=0)
    products.filter(pk=first[1]).update(available=False)
    products.filter(pk=first[2]).update(deleted=True)

    second = _pks(recommend(tenant.pk, customer.pk, k=5))

    assert len(second) == 5
    assert not set(second) & set(first[:3])
    assert second[:2] == first[3:5]  # the rest keep their order


def test_an_event_posted_now_changes_the_next_answer(shop):
    tenant, _ = shop
    customer = _buyer(tenant)
    before = recommend(tenant.pk, customer.pk, k=10)
    # Ten views of products far from what the model recommends to this customer.
    far = recommend(tenant.pk, customer.pk, k=300).items[-10:]
    rows = [{"type": "view", "customer_id": customer.external_id, "product_id": item.external_id} for item in far]
    assert ingest_events(tenant.pk, rows).stored == 10

    after = recommend(tenant.pk, customer.pk, k=10)

    assert _pks(after) != _pks(before)
    # And a purchase removes the bought item at once.
    top = after.items[0]
    ingest_events(tenant.pk, [{"type": "purchase", "customer_id": customer.external_id, "product_id": top.external_id}])
    assert top.product_pk not in _pks(recommend(tenant.pk, customer.pk, k=10))


def test_session_events_personalise_an_anonymous_visitor(shop):
    tenant, version = shop
    session = Event.objects.for_tenant(tenant).exclude(session_id="").values_list("session_id", flat=True)[0]

    rec = recommend(tenant.pk, None, session_id=session, k=5)

    assert (rec.reason, rec.model_version, len(rec.items)) == (Reason.PERSONALIZED, version.pk, 5)


def test_unknown_customers_without_events_get_popular_items(shop):
    tenant, version = shop
    rec = recommend(tenant.pk, None, k=5)
    assert (rec.reason, rec.model_version) == (Reason.UNKNOWN_CUSTOMER, version.pk)
    assert _pks(rec) == [item.product_pk for item in popular_items(tenant.pk, 5)]


def test_similar_products_exclude_the_product_and_unsellable_ones(shop):
    tenant, version = shop
    product = Product.objects.for_tenant(tenant).order_by("pk")[5]
    rec = similar_items(tenant.pk, product.pk, k=8)
    assert (rec.reason, rec.model_version) == (Reason.SIMILAR, version.pk)
    pks = _pks(rec)
    assert len(set(pks)) == 8 and product.pk not in pks
    Product.objects.for_tenant(tenant).filter(pk=pks[0]).update(stock=0)

    again = _pks(similar_items(tenant.pk, product.pk, k=8))

    assert pks[0] not in again and again[:7] == pks[1:]


def test_activating_a_new_version_swaps_the_served_model(shop, django_capture_on_commit_callbacks):
    tenant, first = shop
    customer = _buyer(tenant)
    assert recommend(tenant.pk, customer.pk, k=3).model_version == first.pk
    with django_capture_on_commit_callbacks(execute=True):  # the test's transaction never commits
        second = train_active_version(tenant)  # trained and activated
    assert recommend(tenant.pk, customer.pk, k=3).model_version == second.pk

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.rollback(tenant.pk, first.pk)
    assert recommend(tenant.pk, customer.pk, k=3).model_version == first.pk


def test_without_an_active_model_popular_sellable_items_are_served(all_tenants):
    tenant = TenantFactory()
    hot, warm, sold_out = (ProductFactory(tenant=tenant) for _ in range(3))
    Product.objects.for_tenant(tenant).filter(pk=sold_out.pk).update(stock=0)
    now = timezone.now()
    for product, n in ((hot, 3), (warm, 2), (sold_out, 5)):
        for _ in range(n):
            EventFactory(tenant=tenant, product=product, ts=now)
    for _ in range(2):  # exposures, not preferences
        EventFactory(tenant=tenant, product=warm, event_type="impression", ts=now)
    EventFactory(tenant=tenant, product=warm, ts=now - dt.timedelta(days=31))  # outside the 30-day window

    rec = recommend(tenant.pk, None, k=5)

    assert (rec.reason, rec.model_version) == (Reason.NO_ACTIVE_MODEL, None)
    assert _pks(rec) == [hot.pk, warm.pk]
    assert [round(i.score, 3) for i in rec.items] == [1.0, 0.667]


def test_serving_never_imports_the_trainers():
    # A fresh interpreter: this test process has imported the trainers to train the fixtures.
    code = (
        "import sys, django; django.setup();"
        "import serving.funnel, serving.registry_cache, recs.api.recommend_views, config.urls;"
        "bad = sorted(m for m in sys.modules if m.startswith('training.trainers') or m == 'training.pipeline');"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
