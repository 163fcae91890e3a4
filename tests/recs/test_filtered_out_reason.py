"""An empty answer says when filters emptied it: `reason` is `filtered_out` (issue 21: `price_min=5` on a
catalog without prices answered no items with reason `personalized`). An answer the filters only
shortened, or a shop with nothing to recommend, keeps its reason."""

from __future__ import annotations

import pytest
from django.utils import timezone

from recs.models import Event, Product
from recs.rules import create_rule
from tests.factories import EventFactory, ProductFactory, change_products

pytestmark = pytest.mark.django_db


@pytest.fixture
def unpriced_shop(tenant):
    """Two products without prices, each with events (popular has them)."""
    now = timezone.now()
    products = [ProductFactory(tenant=tenant, price=None, category_path=["Books"]) for _ in range(2)]
    for product in products:
        EventFactory(tenant=tenant, product=product, ts=now)
    return products


def _answer(client, path: str, params: dict) -> dict:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/recommendations", {"customer_id": "someone", "price_min": 5}),
        ("/v1/popular", {"price_min": 5}),
        ("/v1/popular", {"category": "Garden"}),  # a category narrows popular's SQL before any filter step
        ("/v1/recommendations", {"customer_id": "someone", "category": "Garden"}),
    ],
)
def test_filters_that_leave_nothing_say_so(recommend_api, unpriced_shop, path, params):
    body = _answer(recommend_api, path, {**params, "explain": "true"})
    assert (body["items"], body["reason"]) == ([], "filtered_out")
    # Cached answers carry the reason too.
    assert _answer(recommend_api, path, params)["reason"] == "filtered_out"


def test_a_similar_products_answer_emptied_by_the_request(recommend_api, unpriced_shop):
    body = _answer(recommend_api, f"/v1/products/{unpriced_shop[0].external_id}/similar", {"price_max": 3})
    assert (body["items"], body["reason"]) == ([], "filtered_out")


def test_the_shops_rules_and_the_out_of_stock_filter_count_too(recommend_api, tenant, unpriced_shop):
    create_rule(tenant, {"name": "no books", "kind": "exclude_categories", "params": {"categories": ["Books"]}})
    assert _answer(recommend_api, "/v1/popular", {})["reason"] == "filtered_out"


def test_out_of_stock_everywhere_is_filtered_out(recommend_api, tenant, unpriced_shop):
    Product.objects.for_tenant(tenant).update(stock=0)
    assert _answer(recommend_api, "/v1/popular", {})["reason"] == "filtered_out"


def test_an_answer_the_filters_only_shortened_keeps_its_reason(recommend_api, tenant, unpriced_shop):
    ProductFactory(tenant=tenant, price=10)  # no events: not popular, so it is no candidate
    body = _answer(recommend_api, "/v1/popular", {"k": 5, "exclude": unpriced_shop[0].external_id})
    assert ([i["id"] for i in body["items"]], body["reason"]) == ([unpriced_shop[1].external_id], "popular")
    query = {"customer_id": "someone", "exclude": unpriced_shop[1].external_id}
    body = _answer(recommend_api, "/v1/recommendations", query)
    assert ([i["id"] for i in body["items"]], body["reason"]) == ([unpriced_shop[0].external_id], "no_active_model")


def test_a_shop_with_nothing_to_recommend_is_not_filtered_out(recommend_api, tenant):
    ProductFactory(tenant=tenant)  # a product, but no events: popular has nothing
    for params in ({}, {"category": "Garden"}, {"price_min": 5}):
        body = _answer(recommend_api, "/v1/popular", params)
        assert (body["items"], body["reason"]) == ([], "popular"), params
    body = _answer(recommend_api, "/v1/recommendations", {"customer_id": "someone", "category": "Garden"})
    assert (body["items"], body["reason"]) == ([], "no_active_model")


def test_a_personalised_answer_emptied_by_a_price_filter(recommend_api, tenant, trained):
    """The issue's case: a served model, a customer it knows, a catalog without prices."""
    buyer = Event.objects.for_tenant(tenant).filter(event_type="purchase").values_list(
        "customer__external_id", flat=True
    )[0]
    assert _answer(recommend_api, "/v1/recommendations", {"customer_id": buyer})["reason"] == "personalized"
    pks = Product.objects.for_tenant(tenant).values_list("pk", flat=True)
    change_products(tenant, {pk: {"price": None} for pk in pks})
    body = _answer(recommend_api, "/v1/recommendations", {"customer_id": buyer, "price_min": 5, "explain": "true"})
    assert (body["items"], body["reason"], body["model_version"]) == ([], "filtered_out", trained.pk)
    price_steps = [s for s in body["explain"]["retrieval"]["filters"] if s["name"] == "context.price"]
    assert price_steps and price_steps[0]["removed"] > 0
