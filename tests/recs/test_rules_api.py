"""/v1/rules, /v1/promotions, /v1/boosts and /v1/recommendation-settings (admin scope)."""

from __future__ import annotations

import pytest

from recs.ingest.event_types import set_event_type
from recs.models import Boost, Promotion, RecommendationSettings, Rule
from recs.rules import create_boost, create_promotion, create_rule, settings_for
from serving.cache import rules_generation

pytestmark = pytest.mark.django_db

SHOES = {"name": "Only shoes", "kind": "include_categories", "params": {"categories": ["Shoes"]}}
ACME = [{"field": "brand", "op": "eq", "value": "Acme"}]
PROBLEM = "application/problem+json"


def _problem(response, status=400) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    return response.json()


def test_rule_crud(api, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/v1/rules", SHOES, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data == {
        **SHOES, "id": data["id"], "endpoints": ["recommendations", "similar", "popular"], "enabled": True,
        "created_at": data["created_at"], "updated_at": data["updated_at"],
    }
    rule = Rule.objects.for_tenant(tenant).get()
    assert (rule.pk, rule.params) == (data["id"], {"categories": ["Shoes"]})

    assert api.get(f"/v1/rules/{rule.pk}").json()["name"] == "Only shoes"
    patched = api.patch(f"/v1/rules/{rule.pk}", {"enabled": False, "endpoints": ["similar"]}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["enabled"], patched.json()["endpoints"]) == (False, ["similar"])
    assert patched.json()["params"] == {"categories": ["Shoes"]}

    # PUT replaces: what it leaves out takes the defaults; its own representation is accepted back.
    body = {**api.get(f"/v1/rules/{rule.pk}").json(), "kind": "price_range", "params": {"max": 20}}
    del body["endpoints"], body["enabled"]
    replaced = api.put(f"/v1/rules/{rule.pk}", body, format="json")
    assert replaced.status_code == 200, replaced.content
    rule.refresh_from_db()
    assert (rule.kind, rule.params, rule.endpoints, rule.enabled) == (
        "price_range", {"min": None, "max": 20}, ["recommendations", "similar", "popular"], True,
    )

    deleted = api.delete(f"/v1/rules/{rule.pk}")
    assert deleted.status_code == 204
    assert not Rule.objects.for_tenant(tenant).exists()
    _problem(api.get(f"/v1/rules/{rule.pk}"), 404)


def test_rule_list_is_paginated_and_filtered(api, tenant):
    create_rule(tenant, SHOES)
    create_rule(tenant, {"name": "Cheap", "kind": "price_range", "params": {"max": 10}, "enabled": False})
    create_rule(tenant, {"name": "No sku", "kind": "exclude_products", "params": {"product_ids": ["s1"]}})

    listed = api.get("/v1/rules", {"page_size": 2})
    assert listed.status_code == 200
    page = listed.json()
    assert [r["name"] for r in page["results"]] == ["No sku", "Cheap"] and page["next"]
    assert [r["name"] for r in api.get(page["next"]).json()["results"]] == ["Only shoes"]
    assert [r["name"] for r in api.get("/v1/rules", {"enabled": "false"}).json()["results"]] == ["Cheap"]
    assert [r["name"] for r in api.get("/v1/rules", {"kind": "price_range"}).json()["results"]] == ["Cheap"]
    _problem(api.get("/v1/rules", {"enabled": "no"}))
    _problem(api.get("/v1/rules", {"kind": "boost"}))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SHOES, "params": {"categories": []}}, "params"),
        ({**SHOES, "kind": "price_range", "params": {"min": 10, "max": 1}}, "params"),
        ({**SHOES, "kind": "attribute", "params": {"mode": "include", "conditions": [{"field": "x"}]}}, "params"),
        ({**SHOES, "kind": "teleport"}, "kind"),
        ({**SHOES, "endpoints": ["home"]}, "endpoints"),
        ({**SHOES, "enabled": "yes"}, "enabled"),
        ({**SHOES, "name": "x" * 101}, "name"),
        ({**SHOES, "priority": 3}, "priority"),
        ({"kind": "price_range", "params": {"max": 1}}, "name"),
    ],
)
def test_invalid_rule_is_a_problem_and_stores_nothing(api, tenant, body, field):
    problem = _problem(api.post("/v1/rules", body, format="json"))
    assert problem["type"] == "/problems/validation-error"
    assert field in problem["errors"], problem
    assert not Rule.objects.for_tenant(tenant).exists()


def test_bad_condition_error_names_its_index(api):
    body = {"name": "a", "kind": "attribute",
            "params": {"mode": "include", "conditions": [*ACME, {"field": "brand", "op": "gt", "value": 1}]}}
    problem = _problem(api.post("/v1/rules", body, format="json"))
    assert "conditions[1].op" in problem["errors"]["params"][0]


def test_invalid_update_changes_nothing(api, tenant):
    rule = create_rule(tenant, SHOES)
    for body in ({"params": {"categories": "Shoes"}}, {"kind": "price_range"}, {"id": 5, "nope": 1}, ["x"]):
        _problem(api.patch(f"/v1/rules/{rule.pk}", body, format="json"))
    _problem(api.put(f"/v1/rules/{rule.pk}", {"name": "only a name"}, format="json"))
    stored = Rule.objects.for_tenant(tenant).get()
    assert (stored.name, stored.kind, stored.params, stored.updated_at) == (
        rule.name, rule.kind, rule.params, rule.updated_at,
    )


def test_promotion_crud(api, tenant):
    body = {"name": "Xmas", "product_ids": ["sku-1", "sku-2"], "threshold": 0.25,
            "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-26T00:00:00Z"}
    created = api.post("/v1/promotions", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["product_ids"], data["conditions"], data["threshold"], data["starts_at"]) == (
        ["sku-1", "sku-2"], [], 0.25, "2026-12-01T00:00:00Z",
    )
    pk = data["id"]
    patched = api.patch(f"/v1/promotions/{pk}", {"conditions": ACME, "product_ids": []}, format="json")
    assert patched.status_code == 200, patched.content
    assert Promotion.objects.for_tenant(tenant).get().conditions == ACME

    _problem(api.patch(f"/v1/promotions/{pk}", {"conditions": []}, format="json"))  # would select nothing
    problem = _problem(api.patch(f"/v1/promotions/{pk}", {"ends_at": "2026-11-01T00:00:00Z"}, format="json"))
    assert "ends_at" in problem["errors"]
    _problem(api.patch(f"/v1/promotions/{pk}", {"threshold": 2}, format="json"))
    assert Promotion.objects.for_tenant(tenant).get().threshold == 0.25
    assert api.get("/v1/promotions", {"enabled": "true"}).json()["results"][0]["id"] == pk
    assert api.delete(f"/v1/promotions/{pk}").status_code == 204
    assert not Promotion.objects.for_tenant(tenant).exists()


def test_boost_crud(api, tenant):
    created = api.post("/v1/boosts", {"name": "Bury Acme", "conditions": ACME, "factor": 0.5}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["endpoints"] == ["recommendations", "similar", "popular"]
    assert _problem(api.patch(f"/v1/boosts/{pk}", {"factor": 1}, format="json"))["errors"]["factor"]
    assert _problem(api.patch(f"/v1/boosts/{pk}", {"factor": 11}, format="json"))["errors"]["factor"]
    assert api.patch(f"/v1/boosts/{pk}", {"factor": 3}, format="json").json()["factor"] == 3.0
    _problem(api.post("/v1/boosts", {"name": "x", "factor": 2}, format="json"))
    assert Boost.objects.for_tenant(tenant).get().factor == 3.0
    assert api.delete(f"/v1/boosts/{pk}").status_code == 204


def test_settings_options_describe_the_writable_fields(api, ingest_api):
    # DRF's OPTIONS checks PUT through get_object(), which a resource with no id in its path has not.
    described = api.options("/v1/recommendation-settings")
    assert described.status_code == 200, described.content
    assert set(described.json()["actions"]["PUT"]) >= {"exclude_out_of_stock", "exclude_consumed_days",
                                                        "max_per_category"}
    assert ingest_api.options("/v1/recommendation-settings").status_code == 403  # the admin scope, as for PUT


def test_settings_get_put_patch(api, tenant):
    got = api.get("/v1/recommendation-settings")
    assert got.status_code == 200
    assert {k: v for k, v in got.json().items() if k != "updated_at"} == {
        "exclude_out_of_stock": True, "consumed_event_types": ["purchase", "rating"], "exclude_consumed_days": None,
        "max_per_category": None,
    }
    patched = api.patch("/v1/recommendation-settings", {"max_per_category": 3}, format="json")
    assert patched.status_code == 200 and patched.json()["max_per_category"] == 3
    assert patched.json()["exclude_out_of_stock"] is True

    put = api.put("/v1/recommendation-settings", {"exclude_out_of_stock": False, "exclude_consumed_days": 30},
                  format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["max_per_category"], put.json()["exclude_consumed_days"]) == (None, 30)

    _problem(api.patch("/v1/recommendation-settings", {"max_per_category": 0}, format="json"))
    _problem(api.patch("/v1/recommendation-settings", {"diversity": 1}, format="json"))
    stored = RecommendationSettings.objects.for_tenant(tenant).get()
    assert (stored.exclude_out_of_stock, stored.exclude_consumed_days, stored.max_per_category) == (False, 30, None)
    assert settings_for(tenant.pk).pk == stored.pk


def test_consumed_event_types_are_the_shops_own(api, tenant):
    problem = _problem(api.patch("/v1/recommendation-settings", {"consumed_event_types": ["purchse"]}, format="json"))
    assert "purchse" in problem["errors"]["consumed_event_types"][0]
    assert settings_for(tenant.pk).consumed_event_types == ["purchase", "rating"]  # nothing half-written

    set_event_type(tenant.pk, "subscribe", 3.0)
    patched = api.patch("/v1/recommendation-settings", {"consumed_event_types": ["subscribe", "purchase"]},
                        format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["consumed_event_types"] == ["purchase", "subscribe"]


def test_every_write_bumps_the_rules_generation_after_commit(api, tenant, django_capture_on_commit_callbacks):
    seen = [rules_generation(tenant.pk)]

    def bumped(send):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = send()
        assert response.status_code < 300, response.content
        assert callbacks, "the bump waits for the commit"
        seen.append(rules_generation(tenant.pk))
        assert seen[-1] != seen[-2]
        return response

    pk = bumped(lambda: api.post("/v1/rules", SHOES, format="json")).json()["id"]
    bumped(lambda: api.patch(f"/v1/rules/{pk}", {"enabled": False}, format="json"))
    bumped(lambda: api.delete(f"/v1/rules/{pk}"))
    pk = bumped(lambda: api.post("/v1/promotions", {"name": "p", "product_ids": ["a"]}, format="json")).json()["id"]
    bumped(lambda: api.delete(f"/v1/promotions/{pk}"))
    pk = bumped(lambda: api.post("/v1/boosts", {"name": "b", "conditions": ACME, "factor": 2}, format="json"))
    bumped(lambda: api.patch("/v1/recommendation-settings", {"max_per_category": 2}, format="json"))

    # A refused write changes nothing, the generation included.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _problem(api.post("/v1/boosts", {"name": "b", "conditions": ACME, "factor": 1}, format="json"))
    assert not callbacks and rules_generation(tenant.pk) == seen[-1]


def test_another_tenants_rows_are_404_and_unchanged(api, outsider_api, tenant, other_tenant):
    rule = create_rule(tenant, SHOES)
    promotion = create_promotion(tenant, {"name": "p", "product_ids": ["a"]})
    boost = create_boost(tenant, {"name": "b", "conditions": ACME, "factor": 2})
    settings_for(tenant).__class__.objects.for_tenant(tenant).update(max_per_category=4)

    for path, obj in (("rules", rule), ("promotions", promotion), ("boosts", boost)):
        own = api.get(f"/v1/{path}/{obj.pk}").json()
        for method, body in (("get", None), ("patch", {"name": "B was here"}), ("put", own), ("delete", None)):
            response = getattr(outsider_api, method)(f"/v1/{path}/{obj.pk}", body, format="json")
            assert _problem(response, 404)["detail"]
        assert outsider_api.get(f"/v1/{path}").json()["results"] == []
        obj.refresh_from_db()
        assert obj.name != "B was here"

    # B's settings are B's own: reading or changing them never touches A's.
    assert outsider_api.get("/v1/recommendation-settings").json()["max_per_category"] is None
    assert outsider_api.patch("/v1/recommendation-settings", {"max_per_category": 9}, format="json").status_code == 200
    assert settings_for(tenant).max_per_category == 4
    assert settings_for(other_tenant).max_per_category == 9
    assert Rule.objects.for_tenant(other_tenant).count() == 0


@pytest.mark.parametrize("path", ["/v1/rules", "/v1/promotions", "/v1/boosts", "/v1/recommendation-settings"])
def test_a_key_without_admin_scope_is_forbidden(ingest_api, recommend_api, tenant, path):
    rule = create_rule(tenant, SHOES)
    for client in (ingest_api, recommend_api):
        assert "admin" in _problem(client.get(path), 403)["detail"]
        write = client.put if "settings" in path else client.post
        _problem(write(path, {"max_per_category": 2} if "settings" in path else SHOES, format="json"), 403)
        _problem(client.patch(f"/v1/rules/{rule.pk}", {"enabled": False}, format="json"), 403)
    rule.refresh_from_db()
    assert rule.enabled
    assert Rule.objects.for_tenant(tenant).count() == 1
    assert not RecommendationSettings.objects.for_tenant(tenant).exists()


def test_database_constraints_back_the_validators(tenant):
    from django.db import IntegrityError, transaction

    for model, fields in (
        (Boost, {"name": "b", "conditions": ACME, "factor": 1.0}),
        (Promotion, {"name": "p", "product_ids": ["a"], "threshold": 1.5}),
        (RecommendationSettings, {"max_per_category": 0}),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            model.objects.for_tenant(tenant).create(tenant=tenant, **fields)
