"""/v1/experiments through the API: the admin key manages its shop's experiments, another scope is refused,
another shop's experiment is a 404, and states forbid what they must (409)."""

from __future__ import annotations

import pytest

from tests.experiments.factories import make_experiment

pytestmark = pytest.mark.django_db

BODY = {
    "name": "ranker off", "goal": "revenue_per_1000", "secondary": ["click_through"],
    "guardrails": [{"metric": "empty_answers", "margin": 0.05}], "holdout_share": 0.1, "traffic_share": 0.5,
    "planned_units": 20_000,
    "variants": [{"name": "control", "weight": 1, "config": {}},
                 {"name": "no-ranker", "weight": 1, "config": {"ranker": False}}],
}


def test_create_list_read_and_walk_through_the_states(api, tenant):
    created = api.post("/v1/experiments", BODY, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "draft" and [v["name"] for v in body["variants"]] == ["control", "no-ranker"]
    assert body["variants"][1]["config"] == {"model_version": "active", "ranker": False}
    pk = body["id"]

    assert [e["id"] for e in api.get("/v1/experiments").json()["results"]] == [pk]
    assert api.get(f"/v1/experiments/{pk}").json()["name"] == "ranker off"
    started = api.post(f"/v1/experiments/{pk}/start")
    assert started.status_code == 200 and started.json()["status"] == "running" and started.json()["started_at"]
    assert api.post(f"/v1/experiments/{pk}/pause").json()["status"] == "paused"
    ramped = api.post(f"/v1/experiments/{pk}/ramp", {"weights": {"control": 1, "no-ranker": 3}}, format="json")
    assert ramped.status_code == 200 and [v["weight"] for v in ramped.json()["variants"]] == [1.0, 3.0]
    assert api.post(f"/v1/experiments/{pk}/start").json()["status"] == "running"
    assert api.post(f"/v1/experiments/{pk}/stop").json()["status"] == "stopped"

    again = api.post(f"/v1/experiments/{pk}/start")
    assert again.status_code == 409 and again["Content-Type"] == "application/problem+json"
    results = api.get(f"/v1/experiments/{pk}/results")
    assert results.status_code == 200 and results.json()["decision"] == [] and results.json()["as_of"] is None


@pytest.mark.parametrize("change, field", [
    ({"variants": [{"name": "a", "weight": 1, "config": {"model_version": 3}}, {"name": "b", "weight": 1}]},
     "variants"),
    ({"variants": [{"name": "a", "weight": 1, "config": {"num_candidates": 50}}, {"name": "b", "weight": 1}]},
     "variants"),
    ({"variants": [{"name": "a", "weight": 1}]}, "variants"),
    ({"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "variants"),
    ({"variants": [{"name": "holdout", "weight": 1}, {"name": "b", "weight": 0}]}, "variants"),
    ({"goal": "latency"}, "goal"),
    ({"holdout_share": 0.95}, "holdout_share"),
    ({"traffic_share": 0}, "traffic_share"),
    ({"guardrails": [{"metric": "empty_answers", "margin": 0}]}, "guardrails"),
    ({"planned_units": "many"}, "planned_units"),
])
def test_invalid_experiments_are_refused_naming_the_field(api, change, field):
    response = api.post("/v1/experiments", {**BODY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in str(response.json()), response.json()


def test_a_name_is_unique_per_shop_and_ramp_needs_every_variant(api, tenant):
    assert api.post("/v1/experiments", BODY, format="json").status_code == 201
    assert api.post("/v1/experiments", BODY, format="json").status_code == 400
    pk = api.get("/v1/experiments").json()["results"][0]["id"]
    assert api.post(f"/v1/experiments/{pk}/ramp", {"weights": {"control": 1}}, format="json").status_code == 400


def test_a_key_without_the_admin_scope_is_refused(recommend_api, tenant):
    assert recommend_api.get("/v1/experiments").status_code == 403
    assert recommend_api.post("/v1/experiments", BODY, format="json").status_code == 403


def test_another_shops_experiment_is_not_found(api, outsider_api, tenant, other_tenant):
    theirs = make_experiment(other_tenant.pk, "theirs")
    mine = make_experiment(tenant.pk, "mine")

    assert [e["id"] for e in api.get("/v1/experiments").json()["results"]] == [mine.pk]
    for method, path in (("get", ""), ("post", "/start"), ("post", "/pause"), ("post", "/stop"),
                         ("get", "/results")):
        assert getattr(api, method)(f"/v1/experiments/{theirs.pk}{path}").status_code == 404, path
    assert api.post(f"/v1/experiments/{theirs.pk}/ramp", {"weights": {"control": 1, "treatment": 1}},
                    format="json").status_code == 404
    assert outsider_api.get(f"/v1/experiments/{mine.pk}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "draft"


def test_the_schema_documents_the_endpoints(client):
    text = client.get("/v1/schema").content.decode()
    assert "/v1/experiments/{id}/results" in text and "/v1/experiments/{id}/ramp" in text
