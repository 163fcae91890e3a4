"""core/query.py: one pydantic model validates a query string, words its errors and documents it."""

from typing import Annotated, Literal

import pytest
from django.http import QueryDict
from pydantic import Field
from rest_framework.exceptions import ValidationError

from core.query import QueryParams, parse_query, query_parameters


class Listing(QueryParams):
    k: Annotated[int, Field(ge=1, le=100, description="how many")] = 10
    price_min: Annotated[float | None, Field(ge=0)] = None
    sort: Literal["new", "top"] | None = None
    explain: bool = False
    name: Annotated[str | None, Field(min_length=1, max_length=5)] = None


def _errors(query: str) -> dict:
    with pytest.raises(ValidationError) as caught:
        parse_query(Listing, QueryDict(query))
    return caught.value.detail


def test_values_are_converted_from_strings_and_defaults_fill_the_rest():
    parsed = parse_query(Listing, QueryDict("k=5&price_min=2.5&explain=true&name=%20ab%20"))
    assert parsed == Listing(k=5, price_min=2.5, sort=None, explain=True, name="ab")
    assert parse_query(Listing, QueryDict("")) == Listing()


def test_an_unknown_parameter_is_refused_and_the_answer_names_the_ones_that_exist():
    errors = _errors("customer=c1&k=3")
    assert list(errors) == ["customer"]
    assert "k, price_min, sort, explain, name" in str(errors["customer"][0])


def test_a_repeated_parameter_is_refused():
    assert list(_errors("k=1&k=2")) == ["k"]


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        ("k=many", "k", "A whole number is required."),
        ("k=0", "k", "Must be at least 1."),
        ("k=101", "k", "Must be at most 100."),
        ("price_min=cheap", "price_min", "A finite number is required."),
        ("price_min=nan", "price_min", "A finite number is required."),
        ("price_min=-1", "price_min", "Must be at least 0."),
        ("sort=old", "sort", "Must be one of 'new' or 'top'."),
        ("explain=maybe", "explain", "Use true or false."),
        ("name=", "name", "Must not be blank."),
        ("name=abcdef", "name", "At most 5 characters."),
    ],
)
def test_errors_are_worded_by_the_api(query, name, message):
    assert [str(m) for m in _errors(query)[name]] == [message]


def test_every_bad_parameter_is_reported_at_once():
    assert set(_errors("k=0&sort=old&bogus=1")) == {"k", "sort", "bogus"}


def test_the_openapi_parameters_come_from_the_same_model():
    params = {p.name: p for p in query_parameters(Listing)}
    assert list(params) == ["k", "price_min", "sort", "explain", "name"]
    assert params["k"].type == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    assert params["k"].description == "how many"
    assert params["price_min"].type == {"type": "number", "minimum": 0}  # no null: a query string cannot send one
    assert params["sort"].type == {"type": "string", "enum": ["new", "top"]}
    assert not any(p.required for p in params.values())
    assert all(p.location == "query" for p in params.values())
