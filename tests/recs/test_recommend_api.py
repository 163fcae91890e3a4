"""GET /v1/recommendations, /v1/products/{id}/similar and /v1/popular over a tiny trained shop."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from recs.models import Customer, Event, Product
from serving import registry_cache
from tests.factories import EventFactory, ProductFactory
from tests.serving.trained import load_shop, train_active_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(tenant, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    settings.RECSVC_RECS_CACHE_SECONDS = 60
    load_shop(tenant)
    version = train_active_version(tenant)
    yield version
    registry_cache.clear()


def _buyer(tenant) -> Customer:
    pk = Event.objects.for_tenant(tenant).filter(event_type="purchase").values_list("customer_id", flat=True)[0]
    return Customer.objects.for_tenant(tenant).get(pk=pk)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_a_customer_gets_personal_recommendations(recommend_api, tenant, trained):
    customer = _buyer(tenant)
    response = recommend_api.get("/v1/recommendations", {"customer_id": customer.external_id, "k": 5})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model_version"], body["variant"], body["reason"]) == (trained.pk, "control", "personalized")
    uuid.UUID(body["recommendation_id"])
    assert len(body["items"]) == 5 and {"id", "score", "title"} == set(body["items"][0])
    products = Product.objects.for_tenant(tenant)
    assert {p.title for p in products.filter(external_id__in=_ids(response))} == {i["title"] for i in body["items"]}

    excluded = _ids(response)[:2]
    again = recommend_api.get(
        "/v1/recommendations", {"customer_id": customer.external_id, "k": 5, "exclude": ",".join(excluded)}
    )
    assert not set(_ids(again)) & set(excluded)
    assert again.json()["recommendation_id"] != body["recommendation_id"]


def test_answers_are_cached_until_the_customer_acts(
    recommend_api, ingest_api, tenant, trained, django_capture_on_commit_callbacks
):
    customer = _buyer(tenant)
    query = {"customer_id": customer.external_id, "k": 5}
    first = _ids(recommend_api.get("/v1/recommendations", query))
    # A stock change alone waits for the short TTL: the cached answer still shows the item ...
    Product.objects.for_tenant(tenant).filter(external_id=first[1]).update(stock=0)
    assert _ids(recommend_api.get("/v1/recommendations", query)) == first

    # ... but the customer's own event invalidates their cached answers at once.
    event = {"type": "purchase", "customer_id": customer.external_id, "product_id": first[0]}
    with django_capture_on_commit_callbacks(execute=True):  # the test's transaction never commits
        posted = ingest_api.post("/v1/events", event, format="json")
    assert posted.status_code == 201, posted.content
    after = _ids(recommend_api.get("/v1/recommendations", query))
    assert first[0] not in after and first[1] not in after and len(after) == 5


def test_stock_changes_apply_to_the_next_uncached_request(recommend_api, tenant, trained, settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 0
    query = {"customer_id": _buyer(tenant).external_id, "k": 5}
    first = _ids(recommend_api.get("/v1/recommendations", query))
    Product.objects.for_tenant(tenant).filter(external_id=first[0]).update(stock=0)
    assert first[0] not in _ids(recommend_api.get("/v1/recommendations", query))


def test_similar_products(recommend_api, outsider_api, tenant, trained):
    product = Product.objects.for_tenant(tenant).order_by("pk")[3]
    response = recommend_api.get(f"/v1/products/{product.external_id}/similar", {"k": 6})
    assert response.json()["reason"] == "similar_items"
    assert len(_ids(response)) == 6 and product.external_id not in _ids(response)

    missing = recommend_api.get("/v1/products/no-such-product/similar")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"
    # Another shop's key cannot even learn that the product exists.
    hidden = outsider_api.get(f"/v1/products/{product.external_id}/similar")
    assert hidden.status_code == 404 and hidden.json()["detail"] == missing.json()["detail"]


def test_without_a_model_popular_items_come_with_the_reason(recommend_api, tenant):
    now = timezone.now()
    shoes, hats = ProductFactory(tenant=tenant, category_path=["Shoes"]), ProductFactory(tenant=tenant)
    for product, n in ((shoes, 1), (hats, 2)):
        for _ in range(n):
            EventFactory(tenant=tenant, product=product, ts=now)

    body = recommend_api.get("/v1/recommendations", {"customer_id": "someone-new"}).json()
    assert (body["model_version"], body["reason"]) == (None, "no_active_model")
    assert [i["id"] for i in body["items"]] == [hats.external_id, shoes.external_id]

    popular = recommend_api.get("/v1/popular", {"category": "Shoes", "window_days": 7})
    assert _ids(popular) == [shoes.external_id] and popular.json()["reason"] == "popular"


@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/popular", "/v1/products/{id}/similar"])
@pytest.mark.parametrize("k", ["0", "101", "abc"])
def test_k_outside_1_to_100_is_a_problem(recommend_api, tenant, path, k):
    product = ProductFactory(tenant=tenant)
    response = recommend_api.get(path.format(id=product.external_id), {"k": k})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert "k" in response.json()["errors"]


def test_with_redis_down_answers_are_served_uncached(recommend_api, tenant, settings):
    product = ProductFactory(tenant=tenant)
    EventFactory(tenant=tenant, product=product, ts=timezone.now())
    down = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    if down["BACKEND"] != "django_redis.cache.RedisCache":
        pytest.skip("runs against the Redis cache backend (REDIS_URL set)")
    settings.CACHES = {"default": down}

    for _ in range(2):
        response = recommend_api.get("/v1/recommendations", {"customer_id": "anyone"})
        assert _ids(response) == [product.external_id]
