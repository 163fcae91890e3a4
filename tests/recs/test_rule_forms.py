"""Rules, boosts and promotions made with form fields (category checkboxes of the shop's categories, price
inputs, condition rows), not JSON: the form builds the API's JSON, recs.rules judges it, and a stored row
edited without a change is stored unchanged."""

from __future__ import annotations

import pytest
from django.test import Client

from recs.dashboard import condition_rows
from recs.dashboard.condition_rows import condition_of, format_value, parse_value, row_of, split_values
from recs.models import Boost, Promotion, Rule
from recs.rules import create_boost, create_rule
from recs.rules.predicates import OPS
from tests.factories import ProductFactory
from tests.recs.test_rules_dashboard import rows

pytestmark = pytest.mark.django_db

TRICKY = [
    {"field": "attributes.size", "op": "eq", "value": "42"},  # text that reads as a number
    {"field": "attributes.size", "op": "ne", "value": 42},
    {"field": "attributes.adult", "op": "eq", "value": True},
    {"field": "attributes.flag", "op": "eq", "value": "true"},
    {"field": "attributes.weight", "op": "lte", "value": 1.5},
    {"field": "brand", "op": "in", "value": ["Acme", "Smith, Jones", '"quoted"', "  padded "]},
    {"field": "price", "op": "not_in", "value": [10, 19.99]},
    {"field": "title", "op": "contains", "value": "tea"},
    {"field": "category", "op": "eq", "value": "Books, Comics"},
    {"field": "attributes.colour-2", "op": "in", "value": ["red", 3, False]},
]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def catalogs(tenant, other_tenant):
    for path in (["Kitchen", "Teapots"], ["Kitchen", "Mugs"], ["Kitchen", "Mugs"], ["Gift cards"]):
        ProductFactory(tenant=tenant, category_path=path, attributes={"color": "blue", "material": "clay"})
    ProductFactory(tenant=tenant, category_path=["Retired"], deleted=True)
    ProductFactory(tenant=other_tenant, category_path=["Shop B secrets"], attributes={"b_only_key": 1})


# --- the rows' values -------------------------------------------------------------------------------------


def test_typed_values_become_json_of_the_right_type():
    assert parse_value("42", "attributes.size", "eq") == 42
    assert parse_value('"42"', "attributes.size", "eq") == "42"
    assert parse_value("true", "attributes.adult", "eq") is True
    assert parse_value("true", "brand", "eq") == "true"  # brand is text
    assert parse_value("42", "brand", "eq") == "42"
    assert parse_value("19.99", "price", "lt") == 19.99 and parse_value("20", "price", "lt") == 20
    assert parse_value("cheap", "price", "lt") == "cheap"  # left for the validator to refuse
    assert split_values('a, "b, c",, d ') == ["a", '"b, c"', "d"]
    assert condition_of({"field": "attributes", "key": "size", "op": "in", "value": '1, "2", x'}) == {
        "field": "attributes.size", "op": "in", "value": [1, "2", "x"]}
    assert condition_of({"field": "", "key": "color", "op": "eq", "value": "red"})["field"] == "attributes.color"


def test_every_stored_condition_reads_back_as_itself():
    for condition in TRICKY:
        assert condition_of(row_of(condition)) == condition, (condition, row_of(condition))
    assert format_value("42", "attributes.size") == '"42"' and format_value("Acme", "brand") == "Acme"


def test_every_operator_has_words():
    assert set(condition_rows.OP_LABELS) == set(OPS)


# --- rules --------------------------------------------------------------------------------------------------


def test_the_category_picker_lists_this_shops_live_categories_only(owner, catalogs):
    html = client_for(owner).get("/rules/new").content.decode()
    picker = html[html.index('class="category-picker"'):html.index('name="other_categories"')]
    for name, count in (("Kitchen", 3), ("Mugs", 2), ("Teapots", 1), ("Gift cards", 1)):
        assert f'value="{name}"' in picker and f"{name} · {count}" in picker
    assert picker.index("Kitchen") < picker.index("Mugs") < picker.index("Teapots")  # most products first
    assert "Retired" not in picker and "Shop B secrets" not in html
    assert '<option value="color">' in html and "b_only_key" not in html  # attribute keys to pick from


def test_a_category_rule_from_checkboxes_and_typed_names(owner, tenant, catalogs):
    response = client_for(owner).post("/rules/new", {
        "name": "No kitchen", "kind": "exclude_categories", "categories": ["Mugs", "Teapots"],
        "other_categories": "Coming soon\nMugs", "endpoints": ["recommendations"], "enabled": "on",
        "price_max": "5",  # another kind's field: ignored
    })
    assert response.status_code == 302, response.content.decode()
    rule = Rule.objects.for_tenant(tenant).get()
    assert rule.params == {"categories": ["Mugs", "Teapots", "Coming soon"]}

    form = client_for(owner).get(f"/rules/{rule.pk}").content.decode()
    assert 'value="Mugs" checked' in form.replace('id="id_categories_1" ', "").replace('id="id_categories_2" ', "")
    assert "Coming soon · no live products" in form  # a stored name no product has is still shown, ticked


def test_form_and_api_store_the_same_rule(owner, tenant, api):
    params = {"mode": "include", "conditions": TRICKY}
    via_api = api.post("/v1/rules", {"name": "api", "kind": "attribute", "params": params}, format="json")
    assert via_api.status_code == 201, via_api.content
    typed = [(r["field"], r["key"], r["op"], r["value"]) for r in map(row_of, TRICKY)]
    response = client_for(owner).post("/rules/new", {
        "name": "form", "kind": "attribute", "mode": "include", **rows(*typed),
        "endpoints": ["recommendations", "similar", "popular"], "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()
    api_rule, form_rule = Rule.objects.for_tenant(tenant).order_by("pk")
    assert form_rule.params == api_rule.params


def test_editing_without_a_change_keeps_the_stored_values(owner, tenant):
    rule = create_rule(tenant, {"name": "Tricky", "kind": "attribute",
                                "params": {"mode": "exclude", "conditions": TRICKY}})
    before = Rule.objects.for_tenant(tenant).get(pk=rule.pk).params
    form = client_for(owner).get(f"/rules/{rule.pk}").content.decode()
    assert 'value="&quot;42&quot;"' in form and 'value="1.5"' in form
    assert 'value="Acme, &quot;Smith, Jones&quot;, ' in form
    # The browser posts back what the page holds.
    posted = {"name": "Tricky", "kind": "attribute", "mode": "exclude",
              **rows(*[(r["field"], r["key"], r["op"], r["value"]) for r in map(row_of, TRICKY)]),
              "endpoints": ["recommendations", "similar", "popular"], "enabled": "on"}
    assert client_for(owner).post(f"/rules/{rule.pk}", posted).status_code == 302
    rule.refresh_from_db()
    assert rule.params == before


def test_a_condition_error_names_its_row_and_stores_nothing(owner, tenant):
    response = client_for(owner).post("/boosts/new", {
        "name": "Cheap", **rows(("brand", "eq", "Acme"), ("price", "lt", "cheap")), "factor": "1.5",
        "endpoints": ["recommendations"],
    })
    assert response.status_code == 400
    html = response.content.decode()
    assert "Condition 2, value: price lt needs a number" in html
    assert 'value="cheap"' in html  # what was typed is still there to correct
    assert not Boost.objects.for_tenant(tenant).exists()


def test_more_than_twenty_conditions_are_refused_by_the_validator(owner, tenant):
    many = rows(*[("brand", "eq", f"b{i}") for i in range(25)])
    response = client_for(owner).post("/boosts/new", {"name": "Many", **many, "factor": "2",
                                                      "endpoints": ["recommendations"]})
    assert response.status_code == 400 and "at most 20 conditions" in response.content.decode()
    assert not Boost.objects.for_tenant(tenant).exists()


def test_a_promotion_with_ids_and_condition_rows(owner, tenant):
    response = client_for(owner).post("/promotions/new", {
        "name": "Blue", "product_ids": "sku-9", **rows(("attributes", "color", "eq", "blue"), ("stock", "gt", "0")),
        "threshold": "0.1", "enabled": "on",
    })
    assert response.status_code == 302, response.content.decode()
    assert Promotion.objects.for_tenant(tenant).get().conditions == [
        {"field": "attributes.color", "op": "eq", "value": "blue"}, {"field": "stock", "op": "gt", "value": 0}]


def test_members_see_the_fields_disabled_and_outsiders_get_404(member, outsider, tenant):
    boost = create_boost(tenant, {"name": "Lift", "conditions": [{"field": "brand", "op": "eq", "value": "Acme"}],
                                  "factor": 2})
    page = client_for(member).get(f"/boosts/{boost.pk}").content.decode()
    value = page[page.index('name="conditions-0-value"'):]
    value = value[:value.index(">")]
    assert 'value="Acme"' in value and value.endswith(" disabled")
    assert 'name="conditions-1-field"' not in page and "Add a condition" not in page  # nothing to add
    assert client_for(member).post(f"/boosts/{boost.pk}", {"name": "x", **rows(("brand", "eq", "x")),
                                                           "factor": "3"}).status_code == 403
    assert client_for(outsider).get(f"/boosts/{boost.pk}").status_code == 404
    assert client_for(outsider).post(f"/boosts/{boost.pk}", {"name": "x"}).status_code == 404
    boost.refresh_from_db()
    assert boost.name == "Lift" and boost.factor == 2
