"""A bandit variant in the recommendation path: the experiment's bandit arm is reordered by Thompson sampling
(explain says so) while the static arm is not, its answers are recorded with their propensities, a click
sent back with the recommendation_id reaches the posterior after the event's commit, and the API refuses
bandit settings it cannot honour."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from core.redis_client import raw_redis
from experiments.running import assignment_for
from recs.models import Customer, ServedAnswer
from recs.tasks import store_served_answers
from serving.bandit import state_key
from tenants.context import tenant_context
from tests.experiments.factories import make_experiment

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the bandit's state lives in Redis"),
]

BANDIT = {"bandit": True, "bandit_reward": "click", "bandit_head": 4}


def _one_per_variant(tenant) -> dict[str, str]:
    with tenant_context(tenant.pk):
        customers = list(Customer.objects.for_tenant(tenant).order_by("pk").values_list("external_id", flat=True)[:60])
    found: dict[str, str] = {}
    for customer in customers:
        found.setdefault(assignment_for(tenant.pk, customer, None).variant, customer)
    assert set(found) == {"static", "bandit"}
    return found


def test_the_bandit_arm_reorders_learns_and_records_propensities(
    recommend_api, ingest_api, tenant, trained, django_capture_on_commit_callbacks
):
    experiment = make_experiment(tenant.pk, start=True, variants=[
        {"name": "static", "weight": 1, "config": {}}, {"name": "bandit", "weight": 1, "config": BANDIT}])
    customers = _one_per_variant(tenant)

    static = recommend_api.get("/v1/recommendations", {"customer_id": customers["static"], "explain": "true"}).json()
    served = recommend_api.get("/v1/recommendations", {"customer_id": customers["bandit"], "explain": "true"}).json()
    plain = recommend_api.get("/v1/recommendations", {"customer_id": customers["bandit"]}).json()

    assert static["explain"]["reranker"] is None and "bandit" not in static["explain"]
    assert served["variant"] == f"{experiment.pk}:bandit" and served["explain"]["reranker"] == "thompson"
    bandit = served["explain"]["bandit"]
    assert (bandit["reward"], bandit["head"], bandit["explore_share"]) == ("click", 4, 1.0)
    assert len(bandit["propensities"]) == len(served["items"]) and all(0 < p <= 1 for p in bandit["propensities"])
    assert "_bandit_draw" not in plain and plain["recommendation_id"] != served["recommendation_id"]

    store_served_answers.apply()
    with tenant_context(tenant.pk):
        rows = {str(a.recommendation_id): a for a in ServedAnswer.objects.for_tenant(tenant)}
    assert rows[static["recommendation_id"]].propensities == [1.0] * len(static["items"])
    recorded = rows[plain["recommendation_id"]].propensities
    assert len(recorded) == len(plain["items"]) and recorded[4:] == [1.0] * (len(recorded) - 4)

    key = state_key(tenant.pk, f"{experiment.pk}:bandit:click")
    clicked = plain["items"][1]["id"]
    before = {k.decode(): float(v) for k, v in raw_redis().hgetall(key).items()}
    assert before["s:*"] == 0 and before["e:*"] > 0  # exposures of the answers served so far
    with django_capture_on_commit_callbacks(execute=True):
        response = ingest_api.post("/v1/events", {"type": "click", "customer_id": customers["bandit"],
                                                  "product_id": clicked,
                                                  "recommendation_id": plain["recommendation_id"]}, format="json")
    assert response.status_code == 201, response.content
    after = {k.decode(): float(v) for k, v in raw_redis().hgetall(key).items()}
    assert after["s:*"] == 1.0 and sum(v for k, v in after.items() if k.startswith("s:") and k != "s:*") == 1.0

    # The static arm's answers are no bandit's: a click on them reaches no posterior.
    with django_capture_on_commit_callbacks(execute=True):
        ingest_api.post("/v1/events", {"type": "click", "customer_id": customers["static"],
                                       "product_id": static["items"][0]["id"],
                                       "recommendation_id": static["recommendation_id"]}, format="json")
    assert {k.decode(): float(v) for k, v in raw_redis().hgetall(key).items()}["s:*"] == 1.0


@pytest.mark.parametrize("config, words", [
    ({"bandit_head": 3}, "bandit_head: only with bandit true"),
    ({"bandit": True, "bandit_reward": "likes"}, "bandit_reward"),
    ({"bandit": True, "bandit_head": 50}, "bandit_head"),
    ({"bandit": True, "bandit_explore_share": 1.5}, "bandit_explore_share"),
    ({"bandit": "yes"}, "bandit"),
])
def test_bandit_settings_it_cannot_honour_are_a_clear_400(api, config, words):
    body = {"name": "bandit", "goal": "click_through",
            "variants": [{"name": "a", "weight": 1, "config": {}}, {"name": "b", "weight": 1, "config": config}]}
    response = api.post("/v1/experiments", body, format="json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert words in str(response.json()), response.json()


def test_a_bandit_variant_is_created_with_its_settings(api):
    body = {"name": "bandit", "goal": "revenue_per_1000",
            "variants": [{"name": "a", "weight": 1, "config": {}},
                         {"name": "b", "weight": 1, "config": {"bandit": True, "bandit_reward": "revenue"}}]}
    response = api.post("/v1/experiments", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["variants"][1]["config"] == {
        "model_version": "active", "ranker": True, "bandit": True, "bandit_reward": "revenue", "bandit_head": 5,
        "bandit_explore_share": 1.0, "bandit_half_life_hours": 336.0}
    assert response.json()["variants"][0]["config"] == {"model_version": "active", "ranker": True}
