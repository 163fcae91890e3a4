"""Type errors are answered in the API's words, keyed by field, never in a library's (issue 21: an event's
`"value": "x"` answered msgspec's "Expected `float | null`, got `str` - at `$.value`", a product's
`"tags": "a"` DRF's 'Expected a list of items but got type "str".')."""

from __future__ import annotations

import json

import pytest

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

EVENT = {"type": "rating", "customer_id": "c1", "product_id": "p1"}


def _problem(response) -> dict:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    text = response.content.decode()
    assert "Expected" not in text and "$." not in text and "ErrorDetail" not in text, text
    return response.json()


def test_a_product_of_the_wrong_types(api):
    body = {
        "id": "p1", "title": "Lamp", "price": "abc", "stock": "many", "available": "maybe", "tags": "red",
        "category_path": "Home", "currency": "eur", "updated_at": "yesterday", "description": ["long"],
    }
    assert _problem(api.post("/v1/products", body, format="json"))["errors"] == {
        "price": ["A number is required."],
        "stock": ["A whole number is required."],
        "available": ["Use true or false."],
        "tags": ["A list is required."],
        "category_path": ["A list is required."],
        "currency": ["Three capital letters (ISO 4217: EUR, USD)."],
        "updated_at": ["An ISO 8601 date-time is required (2024-05-01T10:00:00Z)."],
        "description": ["A string is required."],
    }


def test_a_products_bounds_and_list_items(api):
    body = {"id": "p1", "title": "x" * 501, "price": -1, "stock": 2**40, "tags": ["ok", "x" * 65],
            "category_path": ["a"] * 11}
    assert _problem(api.put("/v1/products/p1", body, format="json"))["errors"] == {
        "title": ["At most 500 characters."],
        "price": ["Must be at least 0."],
        "stock": ["Must be at most 2147483647."],
        "tags": ["Item 1: At most 64 characters."],
        "category_path": ["At most 10 items."],
    }


def test_bulk_product_rows_are_worded_alike(api):
    response = api.post("/v1/products/bulk", {"items": [{"id": "p1", "title": "t", "price": "abc", "tags": [5, []]}]},
                        format="json")
    assert _problem(response)["rows"] == [
        {"row": 0, "errors": {"price": ["A number is required."], "tags": ["Item 1: A string is required."]}}
    ]


def test_an_event_of_the_wrong_types(api, tenant):
    ProductFactory(tenant=tenant, external_id="p1")
    problem = _problem(api.post("/v1/events", {**EVENT, "value": "x"}, format="json"))
    assert problem["errors"] == {"value": ["A number is required."]}
    problem = _problem(api.post("/v1/events", {**EVENT, "value": 3, "quantity": 0}, format="json"))
    assert problem["errors"] == {"quantity": ["Must be at least 1."]}
    problem = _problem(api.post("/v1/events", {**EVENT, "value": 3, "timestamp": "2024-01-01T10:00:00"},
                                format="json"))
    assert problem["errors"] == {"timestamp": ["Give a UTC offset (2024-05-01T10:00:00Z)."]}


def test_bulk_event_rows_are_worded_by_field(api, tenant):
    ProductFactory(tenant=tenant, external_id="p1")
    rows = [{**EVENT, "value": "x"}, {**EVENT, "value": 4, "price": "abc"}, {"type": "view"}, [1]]
    problem = _problem(api.generic("POST", "/v1/events/bulk", json.dumps({"events": rows}),
                                   content_type="application/json"))
    assert problem["rows"] == [
        {"row": 0, "errors": {"value": ["A number is required."]}},
        {"row": 1, "errors": {"price": ["A number is required."]}},
        {"row": 2, "errors": {"customer_id": ["This field is required."]}},
        {"row": 3, "errors": {"non_field_errors": ["A JSON object is required."]}},
    ]
    problem = _problem(api.generic("POST", "/v1/events/bulk", b'{"events": 5}', content_type="application/json"))
    assert problem["errors"] == {"events": ["A list is required."]}
