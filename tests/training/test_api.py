"""The training API: start runs (one at a time per tenant), follow them, list versions, activate, roll back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.factories import TenantFactory
from training.registry import lifecycle
from training.registry.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant(all_tenants):
    # tests/training/conftest.py's `tenant` is an array fixture; the API personas need shop A back.
    return TenantFactory(name="Shop A", slug="shop-a")

TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512, "future_window": 2},
        "ranker": {"epochs": 1, "batch_size": 512}, "num_candidates": 50}


def version(tenant, **fields) -> ModelVersion:
    return ModelVersion.objects.create(tenant=tenant, **fields)


def problem_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


# --- starting a run ----------------------------------------------------------------------------------------


def test_start_queues_a_version_with_the_validated_hyperparameters(api, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/v1/training/runs", {"hyperparameters": TINY}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["trigger"] == "api"
    assert body["hyperparameters"] == TINY
    assert body["progress"]["percent"] == 0.0 and body["curve"] == []
    assert response["Location"] == f"/v1/models/{body['id']}"
    stored = ModelVersion.objects.for_tenant(tenant).get()
    assert stored.pk == body["id"] and stored.hyperparameters == TINY
    assert len(callbacks) == 1  # the worker is sent the run once the row is committed, not before


def test_start_without_a_body_uses_the_defaults(api, tenant):
    response = api.post("/v1/training/runs")
    assert response.status_code == 202, response.content
    assert response.json()["hyperparameters"] == {}


@pytest.mark.parametrize(
    ("hyperparameters", "field"),
    [
        ({"retrieval": {"dimm": 16}}, "hyperparameters.retrieval.dimm"),
        ({"learning_rate": 0.1}, "hyperparameters.learning_rate"),
        ({"retrieval": {"dim": "16"}}, "hyperparameters.retrieval.dim"),
        ({"retrieval": {"dim": 16.5}}, "hyperparameters.retrieval.dim"),
        ({"retrieval": {"epochs": 0}}, "hyperparameters.retrieval.epochs"),
        ({"retrieval": {"future_window": 0}}, "hyperparameters.retrieval.future_window"),
        ({"ranker": {"epochs": True}}, "hyperparameters.ranker.epochs"),
        ({"ranker": {"lr": 5.0}}, "hyperparameters.ranker.lr"),
        ({"ranker": [1, 2]}, "hyperparameters.ranker"),
        ({"num_candidates": 10**9}, "hyperparameters.num_candidates"),
        ("fast please", "hyperparameters"),
    ],
)
def test_bad_hyperparameters_are_refused_and_nothing_is_queued(api, tenant, hyperparameters, field):
    response = api.post("/v1/training/runs", {"hyperparameters": hyperparameters}, format="json")
    problem = problem_of(response, 400)
    assert field in problem["errors"], problem
    assert not ModelVersion.objects.for_tenant(tenant).exists()


def test_every_bad_key_is_named_at_once(api):
    body = {"hyperparameters": {"retrieval": {"dim": 0, "epoch": 3}, "ranker": {"batch_size": 8}}}
    problem = problem_of(api.post("/v1/training/runs", body, format="json"), 400)
    assert set(problem["errors"]) == {
        "hyperparameters.retrieval.dim", "hyperparameters.retrieval.epoch", "hyperparameters.ranker.batch_size"
    }
    assert "Allowed here" in problem["errors"]["hyperparameters.retrieval.epoch"][0]


def test_unknown_body_fields_are_refused(api, tenant):
    problem = problem_of(api.post("/v1/training/runs", {"params": TINY}, format="json"), 400)
    assert "params" in problem["errors"]
    assert not ModelVersion.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("busy", ["queued", "training", "validating"])
def test_one_run_at_a_time_per_tenant(api, tenant, busy):
    running = version(tenant, status=busy)

    problem = problem_of(api.post("/v1/training/runs", {}, format="json"), 409)

    assert "one run at a time" in problem["detail"]
    assert problem["run"] == {"id": running.pk, "status": busy}
    assert ModelVersion.objects.for_tenant(tenant).count() == 1


def test_a_finished_run_no_longer_blocks(api, tenant):
    version(tenant, status="failed")
    version(tenant, status="ready", metrics={"ndcg@10": 0.1})
    assert api.post("/v1/training/runs", {}, format="json").status_code == 202


def test_the_database_refuses_a_second_run_in_flight(tenant):
    # The guard that holds when two requests pass the check at the same moment.
    version(tenant, status="queued")
    with pytest.raises(IntegrityError), transaction.atomic():
        version(tenant, status="training")


def test_another_tenants_run_does_not_block(api, tenant, outsider_api, other_tenant):
    version(tenant, status="training")
    assert outsider_api.post("/v1/training/runs", {}, format="json").status_code == 202
    assert ModelVersion.objects.for_tenant(other_tenant).get().status == "queued"


def test_a_queued_run_on_a_tenant_without_data_fails_with_the_reason(api, tenant, django_capture_on_commit_callbacks):
    # Tasks run in process in tests: committing the request runs the Celery task itself.
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/v1/training/runs", {"hyperparameters": TINY}, format="json")

    detail = api.get(f"/v1/models/{response.json()['id']}").json()
    assert detail["status"] == "failed"
    assert "usable events" in detail["status_reason"]
    assert detail["timings"]["finished_at"] is not None
    assert api.post("/v1/training/runs", {}, format="json").status_code == 202  # the slot is free again


# --- reading ----------------------------------------------------------------------------------------------


def test_lists_are_newest_first_without_the_curve(api, tenant):
    old = version(tenant, status="ready", metrics={"ndcg@10": 0.1})
    new = version(tenant, status="training", curve=[{"phase": "evaluation", "stage": "retrieval", "loss": 1.0}])
    for path in ("/v1/models", "/v1/training/runs"):
        rows = api.get(path).json()["results"]
        assert [r["id"] for r in rows] == [new.pk, old.pk]
        assert "curve" not in rows[0] and "progress" in rows[0]


def test_lists_filter_by_status(api, tenant):
    ready = version(tenant, status="ready")
    active = version(tenant, status="active")
    failed = version(tenant, status="failed")
    assert [r["id"] for r in api.get("/v1/models?status=ready").json()["results"]] == [ready.pk]
    both = api.get("/v1/models?status=ready&status=active").json()["results"]
    assert [r["id"] for r in both] == [active.pk, ready.pk]
    assert [r["id"] for r in api.get("/v1/training/runs?status=failed").json()["results"]] == [failed.pk]
    problem = problem_of(api.get("/v1/models?status=broken"), 400)
    assert "status" in problem["errors"]


def test_lists_page_with_a_cursor(api, tenant):
    made = [version(tenant, status="failed") for _ in range(3)]
    first = api.get("/v1/training/runs?page_size=2").json()
    second = api.get(first["next"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == [v.pk for v in reversed(made)]
    assert second["next"] is None


def test_detail_shows_metrics_progress_curve_and_timings(api, tenant):
    started = timezone.now() - dt.timedelta(minutes=2)
    running = version(
        tenant, status="training", started_at=started, heartbeat_at=timezone.now(),
        progress={"phase": "evaluation", "stage": "ranker", "epoch": 1, "step": 40, "loss": 0.52, "percent": 31.5},
        curve=[
            {"phase": "evaluation", "stage": "retrieval", "epoch": 0, "step": 0, "loss": 4.1, "elapsed": 0.1},
            {"phase": "evaluation", "stage": "ranker", "epoch": 1, "step": 40, "loss": 0.52, "elapsed": 2.0},
        ],
        metrics={"ndcg@10": 0.12},
    )
    body = api.get(f"/v1/models/{running.pk}").json()
    assert body["progress"] == {"percent": 31.5, "phase": "evaluation", "stage": "ranker", "epoch": 1, "step": 40,
                                "loss": 0.52}
    assert [p["loss"] for p in body["curve"]] == [4.1, 0.52]
    assert body["curve"][1] == {"phase": "evaluation", "stage": "ranker", "epoch": 1, "step": 40, "loss": 0.52,
                                "elapsed": 2.0}
    assert body["metrics"] == {"ndcg@10": 0.12}
    assert body["timings"]["queued_seconds"] is not None and body["timings"]["run_seconds"] >= 119
    assert "artifact_uri" not in body  # a server path is none of the tenant's business
    same = api.get(f"/v1/training/runs/{running.pk}").json()  # a run is the version it produces
    assert {k: v for k, v in same.items() if k != "timings"} == {k: v for k, v in body.items() if k != "timings"}


def test_a_finished_version_without_progress_shows_full(api, tenant):
    ready = version(tenant, status="ready", metrics={"ndcg@10": 0.2})
    assert api.get(f"/v1/models/{ready.pk}").json()["progress"]["percent"] == 100.0


def test_other_scopes_are_refused(ingest_api, recommend_api, tenant):
    v = version(tenant, status="ready")
    for client in (ingest_api, recommend_api):
        assert client.get("/v1/models").status_code == 403
        assert client.post("/v1/training/runs", {}, format="json").status_code == 403
        assert client.post(f"/v1/models/{v.pk}/activate", {}, format="json").status_code == 403
    assert ModelVersion.objects.for_tenant(tenant).count() == 1


# --- activation and rollback ----------------------------------------------------------------------------


def test_activate_swaps_the_active_version(api, tenant):
    first = version(tenant, status="active", metrics={"ndcg@10": 0.10})
    second = version(tenant, status="ready", metrics={"ndcg@10": 0.12})

    response = api.post(f"/v1/models/{second.pk}/activate", {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "active"
    first.refresh_from_db()
    assert first.status == "ready"
    assert lifecycle.active_version(tenant.pk) == second


def test_activate_refuses_a_regression_with_the_reason_and_force_overrides(api, tenant):
    good = version(tenant, status="active", metrics={"ndcg@10": 0.20})
    worse = version(tenant, status="ready", metrics={"ndcg@10": 0.10})

    problem = problem_of(api.post(f"/v1/models/{worse.pk}/activate"), 409)

    assert "regresses" in problem["detail"] and problem["force_allowed"] is True
    assert problem["type"] == "/problems/activation-refused"
    assert "regresses" in api.get(f"/v1/models/{worse.pk}").json()["status_reason"]
    assert lifecycle.active_version(tenant.pk) == good

    forced = api.post(f"/v1/models/{worse.pk}/activate", {"force": True}, format="json")
    assert forced.status_code == 200 and forced.json()["status_reason"] == "activated (forced)"
    assert lifecycle.active_version(tenant.pk) == worse


@pytest.mark.parametrize("status", ["failed", "queued", "training"])
def test_force_never_activates_an_unfinished_or_failed_version(api, tenant, status):
    active = version(tenant, status="active", metrics={"ndcg@10": 0.1})
    other = version(tenant, status=status, metrics={"ndcg@10": 0.9})
    problem = problem_of(api.post(f"/v1/models/{other.pk}/activate", {"force": True}, format="json"), 409)
    assert "not ready" in problem["detail"] and problem["force_allowed"] is False
    assert lifecycle.active_version(tenant.pk) == active


def test_activate_refuses_unknown_fields_and_changes_nothing(api, tenant):
    ready = version(tenant, status="ready", metrics={"ndcg@10": 0.1})
    problem = problem_of(api.post(f"/v1/models/{ready.pk}/activate", {"forse": True}, format="json"), 400)
    assert "forse" in problem["errors"]
    assert lifecycle.active_version(tenant.pk) is None


def test_rollback_goes_back_to_an_earlier_version_even_if_it_scores_lower(api, tenant):
    earlier = version(tenant, status="ready", metrics={"ndcg@10": 0.10})
    current = version(tenant, status="active", metrics={"ndcg@10": 0.30})

    response = api.post(f"/v1/models/{earlier.pk}/rollback")

    assert response.status_code == 200, response.content
    assert lifecycle.active_version(tenant.pk) == earlier
    current.refresh_from_db()
    assert current.status == "ready"
    # ... and forward again is an activation, not a rollback.
    problem = problem_of(api.post(f"/v1/models/{current.pk}/rollback"), 409)
    assert "newer than the active version" in problem["detail"]
    assert api.post(f"/v1/models/{current.pk}/activate").status_code == 200


def test_rollback_to_a_failed_version_is_refused(api, tenant):
    failed = version(tenant, status="failed", metrics={"ndcg@10": 0.5})
    active = version(tenant, status="active", metrics={"ndcg@10": 0.1})
    problem_of(api.post(f"/v1/models/{failed.pk}/rollback"), 409)
    assert lifecycle.active_version(tenant.pk) == active


# --- tenants ------------------------------------------------------------------------------------------------


def test_another_tenants_versions_are_404_and_untouched(api, outsider_api, tenant, other_tenant):
    active = version(tenant, status="active", metrics={"ndcg@10": 0.2})
    ready = version(tenant, status="ready", metrics={"ndcg@10": 0.3}, status_reason="secret of A")

    for path in (f"/v1/models/{ready.pk}", f"/v1/training/runs/{ready.pk}"):
        assert problem_of(outsider_api.get(path), 404)["detail"] == problem_of(
            outsider_api.get(f"/v1/models/{2**62}"), 404)["detail"]
    problem_of(outsider_api.post(f"/v1/models/{ready.pk}/activate", {"force": True}, format="json"), 404)
    problem_of(outsider_api.post(f"/v1/models/{active.pk}/rollback"), 404)
    assert outsider_api.get("/v1/models").json()["results"] == []
    assert outsider_api.get("/v1/training/runs?status=ready").json()["results"] == []

    assert lifecycle.active_version(tenant.pk) == active
    assert lifecycle.active_version(other_tenant.pk) is None
    ready.refresh_from_db()
    assert ready.status == "ready" and ready.status_reason == "secret of A"
