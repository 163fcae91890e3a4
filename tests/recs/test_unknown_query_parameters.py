"""Every list endpoint refuses a query parameter it does not read: a 400 problem naming the parameters
it does, never an answer that silently ignored the filter (issue 21: `?customer_id=` on events listed
every customer's events)."""

from __future__ import annotations

import pytest

from recs.ingest.event_schema import EventIn
from recs.ingest.events import ingest_events
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _refused(response, name: str) -> str:
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    message = response.json()["errors"][name][0]
    assert message.startswith("Unknown parameter. This endpoint takes")
    return message


@pytest.fixture
def two_customers(tenant):
    ProductFactory(tenant=tenant, external_id="p1")
    events = [EventIn(type="view", customer_id=c, product_id="p1") for c in ("user-4", "user-5", "user-5")]
    ingest_events(tenant.pk, events)


def test_events_filter_by_the_name_an_event_is_sent_with(api, two_customers):
    for name in ("customer", "customer_id"):
        response = api.get(f"/v1/events?{name}=user-4")
        assert response.status_code == 200, response.content
        assert [e["customer_id"] for e in response.json()["results"]] == ["user-4"]
    assert len(api.get("/v1/events?product_id=p1").json()["results"]) == 3


def test_a_misspelt_events_filter_is_refused_naming_the_real_ones(api, two_customers):
    message = _refused(api.get("/v1/events?custmer=user-4"), "custmer")
    for name in ("customer", "customer_id", "product", "type", "since", "until", "session_id", "cursor", "page_size"):
        assert name in message
    assert "format" not in message  # accepted, but nothing a client needs to read about


@pytest.mark.parametrize(
    ("path", "parameter", "named"),
    [
        ("/v1/products", "q", ["brand", "available", "category", "updated_since", "cursor", "page_size"]),
        ("/v1/customers", "search", ["is_placeholder", "updated_since", "cursor", "page_size"]),
        ("/v1/imports", "status", ["cursor", "page_size"]),
        ("/v1/training/runs", "state", ["status", "trigger", "cursor", "page_size"]),
        ("/v1/models", "active", ["status", "trigger", "cursor", "page_size"]),
        ("/v1/rules", "type", ["enabled", "kind", "cursor", "page_size"]),
        ("/v1/promotions", "active", ["enabled", "cursor", "page_size"]),
        ("/v1/boosts", "active", ["enabled", "cursor", "page_size"]),
        ("/v1/integrations", "platform_name", ["cursor", "page_size"]),
        ("/v1/data-exports", "kind", ["cursor", "page_size"]),
    ],
)
def test_every_list_endpoint_refuses_what_it_does_not_read(api, tenant, path, parameter, named):
    ProductFactory(tenant=tenant)
    message = _refused(api.get(f"{path}?{parameter}=x"), parameter)
    assert message == f"Unknown parameter. This endpoint takes: {', '.join(named)}."


def test_a_list_without_parameters_says_so(api):
    assert _refused(api.get("/v1/event-types?page=2"), "page") == "Unknown parameter. This endpoint takes none."


def test_every_unknown_parameter_is_named_and_known_ones_still_work(api, tenant):
    ProductFactory.create_batch(3, tenant=tenant)
    response = api.get("/v1/products?page_size=2&q=shoe&sort=price")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"q", "sort"}
    page = api.get("/v1/products?page_size=2&available=true&format=json")
    assert page.status_code == 200 and len(page.json()["results"]) == 2
    following = api.get(page.json()["next"])  # the cursor link the API made is taken back
    assert following.status_code == 200 and len(following.json()["results"]) == 1
    # A filter named twice is fine where the filter takes several values.
    assert api.get("/v1/models?status=ready&status=active").status_code == 200


def test_endpoints_that_check_their_own_query_keep_their_wording(recommend_api, tenant):
    ProductFactory(tenant=tenant)
    response = recommend_api.get("/v1/popular?q=x&k=3")
    assert response.status_code == 400
    assert response.json()["errors"]["q"][0].startswith("Unknown parameter. This endpoint takes: k, category,")
    assert recommend_api.get("/v1/popular?k=3&price_min=0").status_code == 200
