"""The dashboard's Rules and Promotions pages: owners change, members look, outsiders never reach them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from recs.dashboard.rules import promotion_status
from recs.models import Boost, Promotion, RecommendationSettings, Rule
from recs.rules import create_boost, create_promotion, create_rule, settings_for, update_settings
from serving.cache import rules_generation

pytestmark = pytest.mark.django_db

ACME = [{"field": "brand", "op": "eq", "value": "Acme"}]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shop_a_rules(tenant):
    return {
        "rule": create_rule(tenant, {"name": "No gift cards", "kind": "exclude_categories",
                                     "params": {"categories": ["Gift cards"]}}),
        "boost": create_boost(tenant, {"name": "Lift Acme", "conditions": ACME, "factor": 1.5}),
        "promotion": create_promotion(tenant, {"name": "Winter sale", "product_ids": ["sku-1"], "threshold": 0.2,
                                               "starts_at": "2020-01-01T00:00:00Z"}),
    }


def rows(*conditions: tuple[str, str, str] | tuple[str, str, str, str], name: str = "conditions") -> dict:
    """Condition rows as the form posts them: (field, op, value) or (field, key, op, value)."""
    posted = {}
    for i, row in enumerate(conditions):
        field, key, op, value = row if len(row) == 4 else (row[0], "", row[1], row[2])
        posted.update({f"{name}-{i}-field": field, f"{name}-{i}-key": key, f"{name}-{i}-op": op,
                       f"{name}-{i}-value": value})
    return posted


def _rule_post(**overrides) -> dict:
    return {"name": "Cheap only", "kind": "price_range", "price_max": "20",
            "endpoints": ["recommendations", "popular"], "enabled": "on", **overrides}


def test_pages_list_rules_boosts_settings_and_promotions(owner, shop_a_rules):
    client = client_for(owner)
    page = client.get("/rules")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No gift cards" in html and "Category in Gift cards" in html
    assert "Lift Acme" in html and "brand = Acme" in html and "1.5 lift</span>" in html
    assert 'name="max_per_category"' in html and "New rule" in html
    assert 'href="/rules"' in html and 'href="/promotions"' in html  # in the sidebar, no longer "soon"

    promotions = client.get("/promotions").content.decode()
    assert "Winter sale" in promotions and "sku-1" in promotions and "Live" in promotions


def test_owner_creates_edits_and_deletes_a_rule(owner, tenant, django_capture_on_commit_callbacks):
    client = client_for(owner)
    assert client.get("/rules/new").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/rules/new", _rule_post())
    assert created.status_code == 302 and created["Location"] == "/rules"
    rule = Rule.objects.for_tenant(tenant).get()
    assert (rule.kind, rule.params, rule.endpoints, rule.enabled) == (
        "price_range", {"min": None, "max": 20}, ["recommendations", "popular"], True,
    )
    assert rules_generation(tenant.pk) != 0
    assert "Rule “Cheap only” created." in client.get("/rules").content.decode()

    form = client.get(f"/rules/{rule.pk}").content.decode()
    assert 'name="price_max" value="20"' in form and 'name="params"' not in form  # fields, not JSON
    edited = client.post(f"/rules/{rule.pk}", _rule_post(name="Cheaper", price_min="1", price_max="10",
                                                        enabled=""))
    assert edited.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.params, rule.enabled) == ("Cheaper", {"min": 1, "max": 10}, False)

    assert "Delete “Cheaper”?" in client.get(f"/rules/{rule.pk}/delete").content.decode()
    assert client.post(f"/rules/{rule.pk}/delete").status_code == 302
    assert not Rule.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"price_max": "cheap"}, "Enter a number."),
        ({"price_min": "30", "price_max": "20"}, "min must not be greater than max"),
        ({"price_max": ""}, "Give min, max or both."),
        ({"price_max": "-1"}, "max: must be a non-negative number or null."),
        ({"kind": "attribute", "mode": "include", **rows(("brand", "lt", "1"))},
         "Condition 1, operator: &#x27;lt&#x27; applies only to price, stock and attributes.&lt;key&gt;"),
        ({"kind": "attribute", "mode": "include"}, "conditions: at least one condition is required"),
        ({"kind": "include_categories"}, "categories: at least one is required."),
        ({"endpoints": []}, "Choose at least one."),
        ({"name": " "}, "required"),
    ],
)
def test_rule_form_shows_domain_errors_and_stores_nothing(owner, tenant, overrides, message):
    response = client_for(owner).post("/rules/new", _rule_post(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Rule.objects.for_tenant(tenant).exists()


def test_owner_manages_boosts_and_promotions(owner, tenant):
    client = client_for(owner)
    boost = client.post("/boosts/new", {"name": "Bury clearance", **rows(("brand", "eq", "Acme")), "factor": "0.5",
                                        "endpoints": ["similar"], "enabled": "on"})
    assert boost.status_code == 302, boost.content.decode()
    stored = Boost.objects.for_tenant(tenant).get()
    assert (stored.factor, stored.endpoints, stored.conditions) == (0.5, ["similar"], ACME)
    refused = client.post(f"/boosts/{stored.pk}", {"name": "x", **rows(("brand", "eq", "Acme")), "factor": "1",
                                                   "endpoints": ["similar"]})
    assert refused.status_code == 400 and "A factor of 1 changes nothing" in refused.content.decode()

    # The page labels promotions against the real clock, so the dates are placed relative to it.
    starts = (timezone.now() + dt.timedelta(days=3)).replace(second=0, microsecond=0)
    promotion = client.post("/promotions/new", {
        "name": "Xmas", "product_ids": "sku-1\nsku-2, sku-3\n\n", **rows(("", "eq", "")), "threshold": "0.3",
        "starts_at": f"{starts:%Y-%m-%dT%H:%M}", "ends_at": f"{starts + dt.timedelta(days=25):%Y-%m-%dT%H:%M}",
        "enabled": "on",
    })
    assert promotion.status_code == 302, promotion.content.decode()
    stored = Promotion.objects.for_tenant(tenant).get()
    assert stored.product_ids == ["sku-1", "sku-2", "sku-3"] and stored.conditions == []
    assert stored.starts_at == starts
    assert "Scheduled" in client.get("/promotions").content.decode()

    nothing = client.post(f"/promotions/{stored.pk}", {"name": "Xmas", "product_ids": "", "threshold": "0.3"})
    assert nothing.status_code == 400 and "selects nothing" in nothing.content.decode()
    backwards = client.post(f"/promotions/{stored.pk}", {"name": "Xmas", "product_ids": "a", "threshold": "0",
                                                        "starts_at": "2026-12-02T00:00", "ends_at": "2026-12-01T00:00"})
    assert backwards.status_code == 400 and "Must be after starts_at." in backwards.content.decode()
    stored.refresh_from_db()
    assert stored.product_ids == ["sku-1", "sku-2", "sku-3"]
    assert client.post(f"/promotions/{stored.pk}/delete").status_code == 302
    assert not Promotion.objects.for_tenant(tenant).exists()


def test_promotion_status_against_a_given_clock():
    start, end = dt.datetime(2030, 12, 1, tzinfo=dt.UTC), dt.datetime(2030, 12, 26, tzinfo=dt.UTC)
    promotion = Promotion(name="Xmas", starts_at=start, ends_at=end, enabled=True)
    day = dt.timedelta(days=1)
    assert [promotion_status(promotion, now)[0] for now in (start - day, start, end - day, end)] == [
        "Scheduled", "Live", "Live", "Ended"]
    promotion.enabled = False
    assert promotion_status(promotion, start)[0] == "Disabled"


def test_owner_changes_the_settings(owner, tenant):
    client = client_for(owner)
    saved = client.post("/rules/settings", {"consumed": "days", "consumed_days": "30", "max_per_category": "2"})
    assert saved.status_code == 302
    values = settings_for(tenant)
    assert (values.exclude_out_of_stock, values.exclude_consumed_days, values.max_per_category) == (False, 30, 2)

    client.post("/rules/settings", {"exclude_out_of_stock": "on", "consumed": "never", "max_per_category": ""})
    values = settings_for(tenant)
    assert (values.exclude_out_of_stock, values.exclude_consumed_days, values.max_per_category) == (True, 0, None)

    missing = client.post("/rules/settings", {"consumed": "days", "consumed_days": ""})
    assert missing.status_code == 400 and "How many days?" in missing.content.decode()
    too_many = client.post("/rules/settings", {"consumed": "always", "max_per_category": "500"})
    assert too_many.status_code == 400
    assert settings_for(tenant).exclude_consumed_days == 0
    assert client.get("/rules/settings").status_code == 405


def test_member_sees_everything_read_only_and_cannot_change_it(member, tenant, shop_a_rules):
    update_settings(tenant, {"max_per_category": 3})
    client = client_for(member)
    page = client.get("/rules").content.decode()
    assert "No gift cards" in page and "Read-only" in page and "At most 3" in page
    assert "New rule" not in page and "/delete" not in page
    view = client.get(f"/rules/{shop_a_rules['rule'].pk}")
    assert view.status_code == 200 and "disabled" in view.content.decode() and "Save" not in view.content.decode()
    assert "Winter sale" in client.get("/promotions").content.decode()

    before = {k: (o.name, o.updated_at) for k, o in shop_a_rules.items()}
    for kind, obj in (("rules", shop_a_rules["rule"]), ("boosts", shop_a_rules["boost"]),
                      ("promotions", shop_a_rules["promotion"])):
        assert client.get(f"/{kind}/new").status_code == 403
        assert client.post(f"/{kind}/new", {"name": "member's"}).status_code == 403
        assert client.post(f"/{kind}/{obj.pk}", {"name": "member's"}).status_code == 403
        assert client.get(f"/{kind}/{obj.pk}/delete").status_code == 403
        assert client.post(f"/{kind}/{obj.pk}/delete").status_code == 403
    assert client.post("/rules/settings", {"consumed": "never"}).status_code == 403
    for key, obj in shop_a_rules.items():
        obj.refresh_from_db()
        assert (obj.name, obj.updated_at) == before[key]
    assert settings_for(tenant).exclude_consumed_days is None


def test_outsider_never_sees_or_changes_shop_a_rules(outsider, tenant, other_tenant, shop_a_rules):
    client = client_for(outsider)  # owner of shop B
    assert "No gift cards" not in client.get("/rules").content.decode()
    assert "Winter sale" not in client.get("/promotions").content.decode()
    for kind, key in (("rules", "rule"), ("boosts", "boost"), ("promotions", "promotion")):
        pk = shop_a_rules[key].pk
        assert client.get(f"/{kind}/{pk}").status_code == 404
        assert client.post(f"/{kind}/{pk}", {"name": "B's"}).status_code == 404
        assert client.get(f"/{kind}/{pk}/delete").status_code == 404
        assert client.post(f"/{kind}/{pk}/delete").status_code == 404
    assert client.post("/rules/settings", {"consumed": "never"}).status_code == 302
    assert settings_for(other_tenant).exclude_consumed_days == 0
    assert not RecommendationSettings.objects.for_tenant(tenant).exists()
    for obj in shop_a_rules.values():
        obj.refresh_from_db()
        assert obj.name != "B's"
    assert Rule.objects.for_tenant(tenant).count() == Boost.objects.for_tenant(tenant).count() == 1


@pytest.mark.parametrize("path", ["/rules", "/promotions", "/rules/new", "/boosts/new", "/promotions/new"])
def test_anonymous_visitors_are_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login")
