"""An experiment in the recommendation path: the answer names the unit's variant, the variant's serving
configuration is honoured (ranker off: retrieval order), answers cached under one variant are never served
to another, and a cached answer costs no database read for the assignment."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import lifecycle
from experiments.running import assignment_for
from recs.models import Customer
from serving.answers import RANKER_OFF, RecommendRequest, ServingOptions, recommendations_answer
from tenants.context import tenant_context
from tests.experiments.factories import make_experiment

pytestmark = pytest.mark.django_db


def _customers(tenant) -> list[str]:
    with tenant_context(tenant.pk):
        return list(Customer.objects.for_tenant(tenant).order_by("pk").values_list("external_id", flat=True)[:60])


def _by_variant(tenant, experiment) -> dict[str, str]:
    """A customer of each variant."""
    found: dict[str, str] = {}
    for customer in _customers(tenant):
        found.setdefault(assignment_for(tenant.pk, customer, None).variant, customer)
    assert set(found) == {"control", "treatment"}
    return found


def test_the_answer_names_the_variant_and_ranker_off_orders_by_retrieval(recommend_api, tenant, trained):
    experiment = make_experiment(tenant.pk, start=True)
    customers = _by_variant(tenant, experiment)

    on = recommend_api.get("/v1/recommendations", {"customer_id": customers["control"], "explain": "true"}).json()
    off = recommend_api.get("/v1/recommendations", {"customer_id": customers["treatment"], "explain": "true"}).json()

    assert on["variant"] == f"{experiment.pk}:control" and off["variant"] == f"{experiment.pk}:treatment"
    assert on["explain"]["scoring"] == "ranker"
    assert off["explain"]["scoring"] == RANKER_OFF
    assert all(i["explain"]["ranker_score"] is None for i in off["items"])
    retrieval = [i["explain"]["retrieval_score"] for i in off["items"]]
    assert retrieval == sorted(retrieval, reverse=True)  # the retrieval order, not the ranker's
    assert any(i["explain"]["ranker_score"] is not None for i in on["items"])


def test_a_unit_keeps_its_variant_across_requests_and_sessions_work(recommend_api, tenant, trained):
    experiment = make_experiment(tenant.pk, start=True)
    customer = _customers(tenant)[0]

    variants = {recommend_api.get("/v1/recommendations", {"customer_id": customer}).json()["variant"]
                for _ in range(3)}
    anonymous = [recommend_api.get("/v1/recommendations", {"session_id": "anon-7"}).json()["variant"]
                 for _ in range(2)]

    assert len(variants) == 1 and variants.pop().startswith(f"{experiment.pk}:")
    assert anonymous[0] == anonymous[1] == f"{experiment.pk}:{assignment_for(tenant.pk, None, 'anon-7').variant}"


def test_answers_cached_under_one_variant_are_not_served_to_another(tenant, trained):
    request = RecommendRequest(customer_id=_customers(tenant)[0], k=5)
    with tenant_context(tenant.pk):
        ranked = recommendations_answer(tenant.pk, request, variant="9:a", options=ServingOptions(ranker=True))
        unranked = recommendations_answer(tenant.pk, request, variant="9:b", options=ServingOptions(ranker=False))
        again = recommendations_answer(tenant.pk, request, variant="9:a", options=ServingOptions(ranker=True))
        default = recommendations_answer(tenant.pk, request)

    assert [i["score"] for i in ranked["items"]] != [i["score"] for i in unranked["items"]]
    assert again == ranked
    assert default == ranked  # the same computation, under its own key (not read from 9:a's)


def test_a_cached_answer_costs_the_assignment_no_database_read(recommend_api, tenant, trained):
    make_experiment(tenant.pk, start=True)
    customer = _customers(tenant)[1]
    first = recommend_api.get("/v1/recommendations", {"customer_id": customer}).json()

    with CaptureQueriesContext(connection) as queries:
        second = recommend_api.get("/v1/recommendations", {"customer_id": customer}).json()

    assert second["items"] == first["items"] and second["variant"] == first["variant"]
    assert not [q for q in queries.captured_queries if "experiments_" in q["sql"]]
    assert not [q for q in queries.captured_queries if "recs_event" in q["sql"]]  # from the cache


def test_a_pause_reaches_the_next_request_through_the_generation(
    recommend_api, tenant, trained, django_capture_on_commit_callbacks
):
    experiment = make_experiment(tenant.pk, start=True)
    customer = _customers(tenant)[2]
    assert recommend_api.get("/v1/recommendations", {"customer_id": customer}).json()["variant"].startswith(
        f"{experiment.pk}:")

    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant.pk):
        lifecycle.pause(experiment)

    assert recommend_api.get("/v1/recommendations", {"customer_id": customer}).json()["variant"] == "control"
