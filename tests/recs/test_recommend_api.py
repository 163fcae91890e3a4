"""GET /v1/recommendations, /v1/products/{id}/similar and /v1/popular over a tiny trained shop."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from recs.api.recommend_views import RecommendQuery
from recs.models import Customer, Event, Product, Promotion
from recs.rules import create_rule
from serving import answers, funnel
from serving import rules as compiled_rules
from serving.answers import RecommendRequest, precompute_recommendations
from serving.cache import answer_ttl, bump_rules_generation
from serving.funnel import PAGE_TYPES
from tenants.api_keys import revoke_api_key
from tenants.models import ApiKey
from tests.factories import EventFactory, ProductFactory, change_products

pytestmark = pytest.mark.django_db



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
    change_products(tenant, {first[1]: {"stock": 0}})
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
    change_products(tenant, {first[0]: {"stock": 0}})
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


def test_a_back_filled_shops_first_fresh_event_does_not_collapse_popular(recommend_api, tenant):
    years_ago = timezone.now() - dt.timedelta(days=3 * 365)
    products = [ProductFactory(tenant=tenant) for _ in range(12)]
    for rank, product in enumerate(products):  # an imported history: product i has 12 - i events
        for n in range(12 - rank):
            EventFactory(tenant=tenant, product=product, ts=years_ago + dt.timedelta(hours=n))
    EventFactory(tenant=tenant, product=products[-1], ts=timezone.now())  # the shop goes live

    for path, params in (("/v1/popular", {}), ("/v1/recommendations", {"customer_id": "new"})):
        body = recommend_api.get(path, {**params, "k": 8, "explain": "true"}).json()
        assert [i["id"] for i in body["items"]] == [p.external_id for p in products[:8]]
        assert body["explain"]["popular"]["window_days"] >= 3 * 365  # widened to the history

    recent = recommend_api.get("/v1/popular", {"k": 1, "explain": "true"}).json()
    assert recent["explain"]["popular"]["window_days"] == 30  # one product asked: the last 30 days hold it
    assert [i["id"] for i in recent["items"]] == [products[-1].external_id]


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


# --- context filters, explain, rules and the cache ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/recommendations", {"page_type": "landing"}, "page_type"),
        ("/v1/recommendations", {"price_min": "-1"}, "price_min"),
        ("/v1/recommendations", {"price_max": "cheap"}, "price_max"),
        ("/v1/recommendations", {"price_min": "10", "price_max": "5"}, "price_max"),
        ("/v1/recommendations", {"explain": "maybe"}, "explain"),
        ("/v1/recommendations", {"category": "x" * 201}, "category"),
        ("/v1/recommendations", {"product_id": "p" * 129}, "product_id"),
        ("/v1/products/{id}/similar", {"page_type": "HOME"}, "page_type"),
        ("/v1/products/{id}/similar", {"price_max": "nan"}, "price_max"),
        ("/v1/popular", {"price_min": "inf"}, "price_min"),
        ("/v1/popular", {"explain": "2"}, "explain"),
    ],
)
def test_context_parameters_are_validated_strictly(recommend_api, tenant, path, params, field):
    product = ProductFactory(tenant=tenant)
    response = recommend_api.get(path.format(id=product.external_id), params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


def test_explain_shows_scores_rules_and_depth_and_is_never_cached(recommend_api, tenant, trained):
    customer = _buyer(tenant)
    rule = create_rule(tenant, {"name": "hide one", "kind": "exclude_products", "params": {"product_ids": ["none"]}})
    bump_rules_generation(tenant.pk)
    query = {"customer_id": customer.external_id, "k": 5}
    plain = recommend_api.get("/v1/recommendations", query).json()
    assert set(plain) == {"items", "recommendation_id", "model_version", "variant", "reason"}
    assert all(set(item) == {"id", "score", "title"} for item in plain["items"])

    body = recommend_api.get("/v1/recommendations", {**query, "explain": "true"}).json()

    assert [i["id"] for i in body["items"]] == [i["id"] for i in plain["items"]]
    item = body["items"][0]["explain"]
    assert set(item) == {"retrieval_score", "ranker_score", "score", "source", "popularity", "boosts", "promotions"}
    assert item["source"] == "model" and item["score"] == body["items"][0]["score"] and item["popularity"] is None
    summary = body["explain"]
    assert summary["retrieval"]["depth"] >= 50 and summary["retrieval"]["after_filters"] > 0
    names = [(s.get("id"), s["name"]) for s in summary["retrieval"]["filters"]]
    assert (None, "out_of_stock") in names and (rule.pk, "hide one") in names
    assert all(isinstance(s["removed"], int) for s in summary["retrieval"]["filters"])

    # The plain answer is cached (the stock change waits for its TTL); explained ones are computed fresh.
    change_products(tenant, {plain["items"][0]["id"]: {"stock": 0}})
    assert _ids(recommend_api.get("/v1/recommendations", query)) == [i["id"] for i in plain["items"]]
    fresh = recommend_api.get("/v1/recommendations", {**query, "explain": "true"})
    assert plain["items"][0]["id"] not in _ids(fresh)


def test_the_current_product_and_filters_shape_the_answer(recommend_api, outsider_api, other_tenant, tenant, trained):
    customer = _buyer(tenant)
    first = _ids(recommend_api.get("/v1/recommendations", {"customer_id": customer.external_id, "k": 5}))
    current = Product.objects.for_tenant(tenant).get(external_id=first[0])

    on_page = recommend_api.get("/v1/recommendations", {
        "customer_id": customer.external_id, "k": 5, "page_type": "product", "product_id": current.external_id,
        "category": current.category_path[0], "price_max": "1000",
    })

    ids = _ids(on_page)
    assert current.external_id not in ids and ids
    products = Product.objects.for_tenant(tenant).filter(external_id__in=ids)
    assert all(current.category_path[0] in p.category_path and float(p.price) <= 1000 for p in products)
    # An id the shop does not have (here: another shop's product) excludes nothing and reveals nothing.
    foreign = ProductFactory(tenant=other_tenant)
    unknown = recommend_api.get("/v1/recommendations", {"customer_id": customer.external_id, "k": 5,
                                                        "product_id": foreign.external_id})
    assert _ids(unknown) == first


def test_a_rule_change_invalidates_cached_answers(recommend_api, tenant, trained, django_capture_on_commit_callbacks):
    query = {"customer_id": _buyer(tenant).external_id, "k": 5}
    first = _ids(recommend_api.get("/v1/recommendations", query))
    assert _ids(recommend_api.get("/v1/recommendations", query)) == first  # cached

    with django_capture_on_commit_callbacks(execute=True):  # the write bumps the rules generation on commit
        create_rule(tenant, {"name": "hide", "kind": "exclude_products", "params": {"product_ids": first[:2]}})

    after = _ids(recommend_api.get("/v1/recommendations", query))
    assert not set(after) & set(first[:2]) and len(after) == 5


def test_similar_and_popular_take_filters_and_rules(recommend_api, tenant, trained, django_capture_on_commit_callbacks):
    product = Product.objects.for_tenant(tenant).order_by("pk")[3]
    category = product.category_path[0]
    similar = recommend_api.get(f"/v1/products/{product.external_id}/similar",
                                {"k": 4, "category": category, "explain": "1", "page_type": "product"})
    ids = _ids(similar)
    assert ids and product.external_id not in ids
    assert all(category in p.category_path for p in Product.objects.for_tenant(tenant).filter(external_id__in=ids))
    assert similar.json()["explain"]["scoring"] == "retrieval"

    top = _ids(recommend_api.get("/v1/popular", {"k": 3}))
    with django_capture_on_commit_callbacks(execute=True):
        create_rule(tenant, {"name": "not on popular", "kind": "exclude_products",
                             "params": {"product_ids": top[:1]}, "endpoints": ["popular"]})
    popular = _ids(recommend_api.get("/v1/popular", {"k": 3, "exclude": top[1]}))
    assert top[0] not in popular and top[1] not in popular and len(popular) == 3


def test_precomputed_answers_are_what_the_api_reads(recommend_api, tenant, trained):
    customer = _buyer(tenant)
    assert precompute_recommendations(tenant.pk, [customer.external_id, "nobody-yet", customer.external_id], k=5) == 2
    cached = answers.recommendations_answer(tenant.pk, RecommendRequest(customer_id=customer.external_id, k=5))
    # Sold out after the precompute: the API still serves the precomputed (cached) answer until its TTL.
    change_products(tenant, {cached["items"][0]["id"]: {"stock": 0}})
    served = recommend_api.get("/v1/recommendations", {"customer_id": customer.external_id, "k": 5})
    assert _ids(served) == [i["id"] for i in cached["items"]]
    fresh = answers.recommendations_answer(tenant.pk, RecommendRequest(customer_id=customer.external_id, k=5),
                                           use_cache=False)
    assert cached["items"][0]["id"] not in [i["id"] for i in fresh["items"]]


def test_a_cached_answer_is_served_to_its_own_shops_key_only(recommend_api, outsider_api, tenant, trained):
    customer = _buyer(tenant)
    precompute_recommendations(tenant.pk, [customer.external_id], k=5)
    cached = answers.recommendations_answer(tenant.pk, RecommendRequest(customer_id=customer.external_id, k=5))
    query = {"customer_id": customer.external_id, "k": 5}
    assert _ids(recommend_api.get("/v1/recommendations", query)) == [i["id"] for i in cached["items"]]
    # The same customer id under another shop's key is another shop's customer: never A's answer.
    theirs = outsider_api.get("/v1/recommendations", query)
    assert theirs.status_code == 200 and theirs.json()["model_version"] is None
    assert not set(_ids(theirs)) & {i["id"] for i in cached["items"]}
    # A bad query is a 400 once the key is admitted, and a bad key a 401 whatever the query.
    assert recommend_api.get("/v1/recommendations", {**query, "k": 0}).status_code == 400
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {recommend_api.raw_key[:-4]}AAAA")
    assert forged.get("/v1/recommendations", {**query, "k": 0}).status_code == 401
    # A revoked key's shop's cached answer is never served to it.
    revoke_api_key(ApiKey.objects.get(tenant=tenant, scopes=["recommend"]))
    assert recommend_api.get("/v1/recommendations", query).status_code == 401


def test_a_promotion_about_to_start_caps_the_cache_ttl(tenant, settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 30
    product = ProductFactory(tenant=tenant)
    EventFactory(tenant=tenant, product=product, ts=timezone.now())
    Promotion.objects.create(tenant=tenant, name="soon", product_ids=[product.external_id],
                             starts_at=timezone.now() + dt.timedelta(seconds=5))
    bump_rules_generation(tenant.pk)

    rec = funnel.recommend(tenant.pk, None, k=3)

    assert 0 < rec.valid_for <= 5
    assert answer_ttl(rec.valid_for) <= 5 and answer_ttl(None) == 30 and answer_ttl(0.4) == 0


def test_with_redis_down_rules_context_and_explain_still_answer(recommend_api, tenant, settings):
    shoes, hats = ProductFactory(tenant=tenant, category_path=["Shoes"]), ProductFactory(tenant=tenant)
    for product in (shoes, hats):
        EventFactory(tenant=tenant, product=product, ts=timezone.now())
    create_rule(tenant, {"name": "no hats", "kind": "exclude_products", "params": {"product_ids": [hats.external_id]}})
    compiled_rules.clear()
    down = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    if down["BACKEND"] != "django_redis.cache.RedisCache":
        pytest.skip("runs against the Redis cache backend (REDIS_URL set)")
    settings.CACHES = {"default": down}

    for path, params in (("/v1/recommendations", {"customer_id": "anyone", "page_type": "home"}), ("/v1/popular", {})):
        response = recommend_api.get(path, {**params, "explain": "true"})
        assert _ids(response) == [shoes.external_id]
        assert response.json()["explain"]["rules_generation"] == 0


def test_a_misspelt_parameter_is_a_problem_naming_the_parameters_that_exist(recommend_api, tenant):
    ProductFactory(tenant=tenant)
    response = recommend_api.get("/v1/recommendations", {"customer": "c1", "count": "3"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"customer", "count"}
    assert "customer_id" in errors["customer"][0] and "window_days" not in errors["customer"][0]
    assert "window_days" in recommend_api.get("/v1/popular", {"days": "7"}).json()["errors"]["days"][0]


def test_the_openapi_document_lists_the_parameters_the_view_checks(client):
    schema = client.get("/v1/schema", HTTP_ACCEPT="application/json").json()
    documented = {p["name"]: p["schema"] for p in schema["paths"]["/v1/recommendations"]["get"]["parameters"]}
    assert set(documented) == set(RecommendQuery.model_fields)
    assert documented["k"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert documented["page_type"]["enum"] == list(PAGE_TYPES)
