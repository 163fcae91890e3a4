"""The fast paths of GET /v1/recommendations and /v1/products/{id}/similar (recs/api/recommend_views.py): the
hot shapes, before DRF."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django.http import QueryDict

from recs.api.recommend_views import (
    RecommendQuery,
    SimilarQuery,
    _common,
    _recommend_request,
    hot_recommend_request,
    hot_similar_request,
)
from recs.models import Event, Product
from serving.answers import SimilarRequest
from tenants.context import dangerously_all_tenants
from tests.conftest import _client_for
from tests.factories import TenantFactory
from tests.serving.trained import forget_served_state, load_shop, train_active_version
from training.registry.lifecycle import active_version_cache_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("query", ["customer_id=c1", "customer_id=c1&k=7", "k=100&customer_id=%C3%A9t%C3%A9",
                                   "customer_id=" + "x" * 128, "customer_id=a%20b&k=1"])
def test_the_hot_shape_means_what_the_full_validation_means(query):
    hot = hot_recommend_request(query)
    full = RecommendQuery(data=QueryDict(query))
    assert hot is not None and full.is_valid(), full.errors
    assert hot == _recommend_request(full.validated_data)
    assert hot.shape() == _recommend_request(full.validated_data).shape()


@pytest.mark.parametrize("query", [
    "", "k=5", "customer_id=", "customer_id=%20c1", "customer_id=c1%00", "customer_id=" + "x" * 129,
    "customer_id=c1&customer_id=c2", "customer_id=c1&k=0", "customer_id=c1&k=101", "customer_id=c1&k=05",
    "customer_id=c1&k=%C2%B2", "customer_id=c1&k=5&k=6", "customer_id=c1&session_id=s", "customer_id=c1&explain=true",
    "customer_id=c1&exclude=p1", "customer_id=c1&unknown=1",
])
def test_anything_else_goes_to_the_full_validation(query):
    assert hot_recommend_request(query) is None


@pytest.mark.parametrize("customer", ["été", "客户-7", "a+b", "x%FFy"])
def test_the_hot_shape_reads_a_raw_query_as_djangos_request_get_does(rf, customer):
    # PEP 3333: the server passes the query's bytes as a Latin-1 string; unescaped UTF-8 arrives that way.
    raw = f"customer_id={customer}&k=3".encode().decode("iso-8859-1")
    request = rf.get("/v1/recommendations")
    request.META["QUERY_STRING"] = raw
    hot = hot_recommend_request(raw)
    assert hot is not None and hot.customer_id == request.GET["customer_id"] and hot.k == 3


def test_a_query_that_is_not_utf8_goes_to_the_full_validation():
    assert hot_recommend_request("customer_id=caf\xe9") is None  # Latin-1 bytes: Django's fallback decides


@pytest.mark.parametrize("query", ["", "k=1", "k=10", "k=100"])
def test_the_hot_similar_shape_means_what_the_full_validation_means(query):
    full = SimilarQuery(data=QueryDict(query))
    assert full.is_valid(), full.errors
    q = full.validated_data
    assert hot_similar_request(query) == SimilarRequest(**_common(q), page_type=q.get("page_type"))


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=05", "k=", "k=5&k=6", "k=5&category=Toys", "explain=true",
                                   "page_type=product", "exclude=p1", "customer_id=c1", "k=5&price_max=9"])
def test_any_other_similar_query_goes_to_the_full_validation(query):
    assert hot_similar_request(query) is None


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the fast path's admission is counted in Redis")
def test_the_similar_fast_path_answers_what_drf_answers(recommend_api, outsider_api, tenant, trained):
    product = Product.objects.for_tenant(tenant).values_list("external_id", flat=True).first()
    path = f"/v1/products/{product}/similar"
    computed = recommend_api.get(path, {"k": 5})  # a miss: computed by the fast path, cached
    cached = recommend_api.get(path, {"k": 5})
    through_drf = recommend_api.get(path, {"k": 5, "explain": "false"})  # not the hot shape
    assert computed.status_code == cached.status_code == through_drf.status_code == 200
    assert "Allow" not in computed and "Allow" not in cached and "Allow" in through_drf  # DRF adds Allow
    answers = [computed.json(), cached.json(), through_drf.json()]
    assert len({a.pop("recommendation_id") for a in answers}) == 3
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["reason"] == "similar_items" and len(answers[0]["items"]) == 5
    assert product not in [item["id"] for item in answers[0]["items"]]
    # What the fast path cannot answer, DRF answers with its problem.
    for response in (recommend_api.get("/v1/products/no-such-product/similar"),
                     recommend_api.get("/v1/products/a%00b/similar"),
                     outsider_api.get(path)):  # another shop's product does not exist for this key
        assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the fast path answers from Redis")
def test_the_fast_path_computes_a_miss_caches_it_and_answers_what_drf_answers(recommend_api, tenant, trained):
    query = {"customer_id": "c-0001", "k": 6}
    computed = recommend_api.get("/v1/recommendations", query)  # a miss: computed by the fast path, cached
    cached = recommend_api.get("/v1/recommendations", query)  # a hit
    through_drf = recommend_api.get("/v1/recommendations", {**query, "explain": "false"})  # not the hot shape
    assert computed.status_code == cached.status_code == through_drf.status_code == 200
    assert computed["Content-Type"] == cached["Content-Type"] == "application/json"
    # DRF's views add Allow; the fast path does not.
    assert "Allow" not in computed and "Allow" not in cached and "Allow" in through_drf
    answers = [computed.json(), cached.json(), through_drf.json()]
    assert len({a.pop("recommendation_id") for a in answers}) == 3
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["model_version"] == trained.pk and len(answers[0]["items"]) == 6


@pytest.fixture
def walled_shop(db, settings, tmp_path):
    """A trained shop whose requests run outside any tenant scope, as in the server (the `tenant`
    fixture keeps the wall lifted for the whole test, which would hide a read made outside a scope)."""
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    settings.RECSVC_RECS_CACHE_SECONDS = 60
    with dangerously_all_tenants():
        shop = TenantFactory()
        load_shop(shop)
        version = train_active_version(shop)
        customer = Event.objects.for_tenant(shop).values_list("customer__external_id", flat=True).first()
        client = _client_for(shop, ["recommend"])
    yield shop, version, customer, client
    forget_served_state()


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the fast path answers from Redis")
def test_the_fast_path_reads_an_expired_active_version_in_the_keys_tenant_scope(walled_shop):
    shop, version, customer, client = walled_shop
    query = {"customer_id": customer, "k": 4}
    assert client.get("/v1/recommendations", query).json()["model_version"] == version.pk
    django_cache.delete(active_version_cache_key(shop.pk))  # expired (its TTL is a minute)

    again = client.get("/v1/recommendations", query)

    # Read in the shop's own scope: row-level security shows its version (outside any scope it would
    # show none, and "no active model" would be cached for every process for a minute).
    assert again.status_code == 200 and again.json()["model_version"] == version.pk
    assert django_cache.get(active_version_cache_key(shop.pk)) == version.pk
    assert client.get("/v1/recommendations", query).json()["reason"] == "personalized"


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="rate limits are counted in Redis")
def test_a_request_handed_on_to_drf_is_counted_once_and_refusals_are_drfs(tenant, settings):
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 2
    client = _client_for(tenant, ["recommend"])
    # Misses (no model, new customers), admitted and answered by the fast path.
    assert client.get("/v1/recommendations", {"customer_id": "u1"}).status_code == 200
    assert client.get("/v1/recommendations", {"customer_id": "u2"}).status_code == 200
    refused = client.get("/v1/recommendations", {"customer_id": "u3"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused["Content-Type"] == "application/problem+json"

    ingest_only = _client_for(tenant, ["ingest"])
    forbidden = ingest_only.get("/v1/recommendations", {"customer_id": "u1"})
    assert forbidden.status_code == 403 and "recommend" in forbidden.json()["detail"]
