"""The predicate grammar (recs.rules.predicates) and the per-kind validation of rules, promotions, boosts
and settings (recs.rules). serving/rules.py compiles exactly what these accept."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from django.core.exceptions import ValidationError

from recs.rules import (
    Condition,
    parse_conditions,
    validate_boost,
    validate_promotion,
    validate_rule,
    validate_rule_params,
    validate_settings,
)
from recs.rules.predicates import MAX_CONDITIONS, MAX_IN_VALUES, normalise_conditions


def _c(field, op, value):
    return {"field": field, "op": op, "value": value}


def test_valid_conditions_parse_to_frozen_conditions():
    parsed = parse_conditions([
        _c("brand", "eq", "Acme"),
        _c("category", "contains", "Shoes"),
        _c("tags", "in", ["sale", "new", "sale"]),
        _c("price", "lte", 49.9),
        _c("stock", "gt", 0),
        _c("title", "contains", "wool"),
        _c("attributes.color-code_2", "not_in", ["red", 1, True]),
        _c("attributes.organic", "eq", True),
        _c("attributes.weight", "gte", 1.5),
    ])

    assert parsed[0] == Condition("brand", "eq", "Acme")
    # Lists become tuples (hashable), duplicates dropped in first-seen order; True and 1 stay distinct.
    assert parsed[2].value == ("sale", "new")
    assert parsed[6].value == ("red", 1, True)
    assert parsed[6].attribute_key == "color-code_2" and parsed[0].attribute_key is None
    with pytest.raises(AttributeError):
        parsed[0].value = "other"  # frozen
    assert hash(parsed[2])
    assert normalise_conditions([_c("tags", "in", ["a", "a"])]) == [_c("tags", "in", ["a"])]


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("brand=Acme", "must be a list"),
        ([], "at least one condition"),
        ([_c("brand", "eq", "x")] * (MAX_CONDITIONS + 1), f"at most {MAX_CONDITIONS}"),
        (["brand"], "conditions[0]: must be an object"),
        ([{"field": "brand", "op": "eq"}], "conditions[0]: missing key(s): value"),
        ([{**_c("brand", "eq", "x"), "negate": True}], "conditions[0]: unknown key(s): negate"),
        ([_c("brand", "eq", "x"), _c("colour", "eq", "red")], "conditions[1].field: unknown field 'colour'"),
        ([_c("attributes.", "eq", "x")], "conditions[0].field: attribute key"),
        ([_c("attributes.a.b", "eq", "x")], "conditions[0].field: attribute key"),
        ([_c(f"attributes.{'k' * 65}", "eq", "x")], "conditions[0].field: attribute key"),
        ([_c(3, "eq", "x")], "conditions[0].field: must be a string"),
        ([_c("brand", "like", "x")], "conditions[0].op: unknown operator"),
        ([_c("brand", "lt", "m")], "conditions[0].op: 'lt' applies only to price, stock"),
        ([_c("title", "gte", 3)], "conditions[0].op"),
        ([_c("brand", "contains", "x")], "conditions[0].op: 'contains' applies only to title, category and tags"),
        ([_c("price", "contains", 3)], "conditions[0].op"),
        ([_c("price", "lt", "10")], "conditions[0].value: price lt needs a number"),
        ([_c("price", "eq", True)], "conditions[0].value: price eq needs a number"),
        ([_c("attributes.size", "gt", "L")], "conditions[0].value: attributes.size gt needs a number"),
        ([_c("price", "lt", math.inf)], "conditions[0].value: number must be finite"),
        ([_c("price", "lt", math.nan)], "conditions[0].value: number must be finite"),
        ([_c("title", "contains", 3)], "conditions[0].value: 'contains' needs a string"),
        ([_c("brand", "eq", None)], "conditions[0].value: must be a string, a finite number or a boolean"),
        ([_c("brand", "eq", ["a"])], "conditions[0].value: must be a string"),
        ([_c("brand", "eq", {"a": 1})], "conditions[0].value: must be a string"),
        ([_c("brand", "eq", "x" * 201)], "longer than 200"),
        ([_c("brand", "eq", "a\x00b")], "NUL"),
        ([_c("brand", "in", [])], "conditions[0].value: 'in' needs a non-empty list"),
        ([_c("brand", "not_in", "a")], "conditions[0].value: 'not_in' needs a non-empty list"),
        ([_c("brand", "in", ["a"] * (MAX_IN_VALUES + 1))], f"at most {MAX_IN_VALUES} values"),
        ([_c("brand", "in", ["a", ["b"]])], "conditions[0].value[1]"),
        ([_c("price", "in", [1, "2"])], "conditions[0].value[1]: price values must be numbers"),
    ],
)
def test_invalid_conditions_name_the_bad_condition(conditions, message):
    with pytest.raises(ValidationError) as raised:
        parse_conditions(conditions)
    assert message in " ".join(raised.value.messages)


def test_empty_predicate_allowed_only_when_asked():
    assert parse_conditions([], allow_empty=True) == []


# --- rule params ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "normalised"),
    [
        ("include_categories", {"categories": ["Shoes", "Bags", "Shoes"]}, {"categories": ["Shoes", "Bags"]}),
        ("exclude_categories", {"categories": ["Adult"]}, {"categories": ["Adult"]}),
        ("price_range", {"min": 10}, {"min": 10, "max": None}),
        ("price_range", {"min": 0, "max": 99.5}, {"min": 0, "max": 99.5}),
        ("price_range", {"min": None, "max": 5}, {"min": None, "max": 5}),
        ("price_range", {"min": 5, "max": 5}, {"min": 5, "max": 5}),
        (
            "attribute",
            {"mode": "exclude", "conditions": [_c("attributes.adult", "eq", True)]},
            {"mode": "exclude", "conditions": [_c("attributes.adult", "eq", True)]},
        ),
        ("exclude_products", {"product_ids": ["sku-1", "sku-2"]}, {"product_ids": ["sku-1", "sku-2"]}),
    ],
)
def test_rule_params_are_normalised(kind, params, normalised):
    assert validate_rule_params(kind, params) == normalised


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("boost_brand", {}, "Unknown rule kind"),
        ("include_categories", [], "params must be an object"),
        ("include_categories", {}, "Missing key(s): categories"),
        ("include_categories", {"categories": []}, "at least one"),
        ("include_categories", {"categories": ["a", 3]}, "categories[1]"),
        ("include_categories", {"categories": ["a"], "mode": "x"}, "Unknown key(s): mode"),
        ("price_range", {}, "Give min, max or both"),
        ("price_range", {"min": None, "max": None}, "Give min, max or both"),
        ("price_range", {"min": 10, "max": 5}, "min must not be greater than max"),
        ("price_range", {"min": "10"}, "min: must be a non-negative number"),
        ("price_range", {"min": -1}, "min: must be a non-negative number"),
        ("price_range", {"max": math.inf}, "max: must be a non-negative number"),
        ("price_range", {"max": True}, "max: must be a non-negative number"),
        ("price_range", {"low": 1}, "Unknown key(s): low"),
        ("attribute", {"mode": "maybe", "conditions": [_c("brand", "eq", "x")]}, "mode"),
        ("attribute", {"mode": "include", "conditions": []}, "at least one condition"),
        ("attribute", {"mode": "include", "conditions": [_c("colour", "eq", "x")]}, "conditions[0].field"),
        ("attribute", {"mode": "include"}, "Missing key(s): conditions"),
        ("exclude_products", {"product_ids": []}, "at least one"),
        ("exclude_products", {"product_ids": ["x" * 129]}, "product_ids[0]: at most 128"),
        ("exclude_products", {"product_ids": ["a"] * 1001}, "at most 1000"),
        ("exclude_products", {"product_ids": [""]}, "non-empty string"),
    ],
)
def test_invalid_rule_params_are_refused(kind, params, message):
    with pytest.raises(ValidationError) as raised:
        validate_rule_params(kind, params)
    assert message in " ".join(raised.value.messages)


def test_rule_defaults_and_field_errors():
    clean = validate_rule({"name": " Only shoes ", "kind": "include_categories", "params": {"categories": ["S"]}})
    assert clean == {
        "name": "Only shoes", "kind": "include_categories", "params": {"categories": ["S"]},
        "endpoints": ["recommendations", "similar", "popular"], "enabled": True,
    }
    assert validate_rule({**clean, "endpoints": ["popular", "similar"]})["endpoints"] == ["similar", "popular"]

    with pytest.raises(ValidationError) as raised:
        validate_rule({"name": "", "kind": "nope", "endpoints": ["home"], "enabled": "yes", "extra": 1})
    errors = raised.value.message_dict
    assert set(errors) == {"name", "kind", "params", "endpoints", "enabled", "extra"}
    assert errors["extra"] == ["Unknown field."]
    with pytest.raises(ValidationError) as raised:
        validate_rule({**clean, "endpoints": []})
    assert set(raised.value.message_dict) == {"endpoints"}


def test_promotion_validation():
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    clean = validate_promotion({"name": "Xmas", "product_ids": ["a"], "starts_at": start.isoformat(),
                                "ends_at": "2026-12-24T00:00:00+00:00", "threshold": 0.3})
    assert clean["starts_at"] == start and clean["threshold"] == 0.3 and clean["conditions"] == []
    assert validate_promotion({"name": "By brand", "conditions": [_c("brand", "eq", "Acme")]})["product_ids"] == []

    for body, field in [
        ({"name": "Nothing"}, "non_field_errors"),
        ({"name": "x", "product_ids": [], "conditions": []}, "non_field_errors"),
        ({"name": "x", "product_ids": ["a"], "threshold": 1.5}, "threshold"),
        ({"name": "x", "product_ids": ["a"], "threshold": -0.1}, "threshold"),
        ({"name": "x", "product_ids": ["a"], "threshold": "0.5"}, "threshold"),
        ({"name": "x", "product_ids": ["a"], "starts_at": "tomorrow"}, "starts_at"),
        ({"name": "x", "product_ids": ["a"], "starts_at": "2026-12-01T00:00:00"}, "starts_at"),  # no zone
        ({"name": "x", "product_ids": ["a"], "starts_at": start, "ends_at": start}, "ends_at"),
        ({"name": "x", "product_ids": "a"}, "product_ids"),
        ({"name": "x", "conditions": [_c("price", "lt", "cheap")]}, "conditions"),
    ]:
        with pytest.raises(ValidationError) as raised:
            validate_promotion(body)
        assert field in raised.value.message_dict, (body, raised.value.message_dict)


@pytest.mark.parametrize(("factor", "ok"), [(0.5, True), (10, True), (1.01, True), (0, False), (-1, False),
                                             (1, False), (1.0, False), (10.5, False), ("2", False), (True, False)])
def test_boost_factor_bounds(factor, ok):
    body = {"name": "b", "conditions": [_c("brand", "eq", "Acme")], "factor": factor}
    if ok:
        assert validate_boost(body)["factor"] == float(factor)
    else:
        with pytest.raises(ValidationError) as raised:
            validate_boost(body)
        assert set(raised.value.message_dict) == {"factor"}


def test_boost_needs_conditions():
    with pytest.raises(ValidationError) as raised:
        validate_boost({"name": "b", "conditions": [], "factor": 2})
    assert set(raised.value.message_dict) == {"conditions"}


def test_settings_validation():
    assert validate_settings({}) == {
        "exclude_out_of_stock": True, "consumed_event_types": ["purchase", "rating"], "exclude_consumed_days": None,
        "max_per_category": None,
    }
    assert validate_settings({"consumed_event_types": ["rating", "purchase", "rating"]})["consumed_event_types"] == [
        "purchase", "rating"]
    assert validate_settings({"exclude_consumed_days": 0, "max_per_category": 100})["exclude_consumed_days"] == 0
    for body, field in [
        ({"exclude_consumed_days": -1}, "exclude_consumed_days"),
        ({"exclude_consumed_days": 1.5}, "exclude_consumed_days"),
        ({"consumed_event_types": "purchase"}, "consumed_event_types"),
        ({"consumed_event_types": [1]}, "consumed_event_types"),
        ({"consumed_event_types": [f"t{i}" for i in range(21)]}, "consumed_event_types"),
        ({"max_per_category": 0}, "max_per_category"),
        ({"max_per_category": 101}, "max_per_category"),
        ({"exclude_out_of_stock": "false"}, "exclude_out_of_stock"),
        ({"diversity": 3}, "diversity"),
    ]:
        with pytest.raises(ValidationError) as raised:
            validate_settings(body)
        assert set(raised.value.message_dict) == {field}
