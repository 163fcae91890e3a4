"""Dashboard pages of training: runs with live progress and "Train now", the schedule, models with metrics and
the loss curve, activation and rollback. Owners act, members read, outsiders get nothing."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from training.registry import lifecycle
from training.registry.models import ModelVersion, TrainingSchedule

pytestmark = pytest.mark.django_db

CURVE = [
    {"phase": "evaluation", "stage": "retrieval", "epoch": 0, "step": 0, "loss": 5.2},
    {"phase": "evaluation", "stage": "retrieval", "epoch": 0, "step": 10, "loss": 4.1},
    {"phase": "evaluation", "stage": "ranker", "epoch": 0, "step": 0, "loss": 0.69},
    {"phase": "evaluation", "stage": "ranker", "epoch": 1, "step": 20, "loss": 0.52},
    {"phase": "evaluation", "stage": "retrieval", "epoch": 0, "step": 0, "loss": 5.1},  # the refit
    {"phase": "serving", "stage": "retrieval", "epoch": 0, "step": 0, "loss": 5.0},
]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def version(tenant, **fields) -> ModelVersion:
    return ModelVersion.objects.create(tenant=tenant, **fields)


@pytest.fixture
def models_a(tenant):
    """Shop A: an older version serving, a newer one that scored worse (refused), one training now."""
    serving = version(tenant, status="active", metrics={"ndcg@10": 0.20, "recall@10": 0.11}, n_events=5000,
                      curve=CURVE)
    worse = version(tenant, status="ready", metrics={"ndcg@10": 0.10}, curve=CURVE)
    with pytest.raises(lifecycle.ActivationRefused):
        lifecycle.activate(worse)
    running = version(
        tenant, status="training", curve=CURVE[:3],
        progress={"phase": "evaluation", "stage": "ranker", "epoch": 0, "loss": 0.69, "percent": 37.5},
    )
    return serving, worse, running


def versions(tenant, **filters) -> list[ModelVersion]:
    return list(ModelVersion.objects.for_tenant(tenant).filter(**filters).order_by("pk"))


# --- who sees what ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "member"])
def test_members_see_runs_models_and_details(request, persona, models_a):
    serving, worse, running = models_a
    client = client_for(request.getfixturevalue(persona))

    runs = client.get("/training").content.decode()
    for v in models_a:
        assert f'id="run-{v.pk}"' in runs
    models = client.get("/models").content.decode()
    assert f'id="model-{serving.pk}"' in models and f'id="model-{worse.pk}"' in models
    assert f'id="model-{running.pk}"' not in models  # not a model until it is trained
    detail = client.get(f"/models/{worse.pk}")
    assert detail.status_code == 200
    # The nav entries are live links now, not "Soon".
    assert 'href="/training"' in runs and 'href="/models"' in runs


def test_owners_get_the_buttons_members_do_not(owner, member, models_a):
    _, worse, _ = models_a
    owner_page = client_for(owner).get(f"/models/{worse.pk}").content.decode()
    member_page = client_for(member).get(f"/models/{worse.pk}").content.decode()
    assert 'id="activate"' in owner_page and 'id="force-activate"' in owner_page
    assert 'id="activate"' not in member_page and 'id="force-activate"' not in member_page
    assert "Read-only" in member_page
    assert 'id="train-now"' in client_for(owner).get("/training").content.decode()
    assert 'id="train-now"' not in client_for(member).get("/training").content.decode()


def test_an_outsider_never_sees_shop_a_versions(outsider, models_a):
    client = client_for(outsider)
    for v in models_a:
        assert client.get(f"/models/{v.pk}").status_code == 404
        assert client.post(f"/models/{v.pk}/activate", {"force": "1"}).status_code == 404
        assert client.post(f"/models/{v.pk}/rollback").status_code == 404
    runs = client.get("/training").content.decode()
    assert 'id="run-' not in runs and "No training runs yet" in runs
    assert 'id="model-' not in client.get("/models").content.decode()
    assert [v.status for v in versions(models_a[0].tenant)] == ["active", "ready", "training"]


def test_anonymous_visitors_are_sent_to_log_in(client, models_a):
    for path in ("/training", "/models", f"/models/{models_a[0].pk}"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login")
    assert client.post("/training/start").status_code == 302
    assert len(versions(models_a[0].tenant)) == 3


# --- runs page ----------------------------------------------------------------------------------------------


def test_runs_show_status_badges_and_live_progress(owner, models_a):
    running = models_a[2]
    html = client_for(owner).get("/training").content.decode()
    row = html[html.index(f'id="run-{running.pk}"'):]
    assert 'class="badge blue">Training' in row[:2000]
    assert 'aria-valuenow="38"' in row[:2000] and "width: 38%" in row[:2000]
    assert "ranker" in row[:2000] and "loss 0.6900" in row[:2000]
    assert 'class="badge green">Active' in html and 'class="badge violet">Ready' in html
    assert "regresses" in html  # why the newer version is not serving
    # A run is in flight: the page polls itself (dashboard.js polls a page whose #live is data-live="1"),
    # and "Train now" waits for it.
    assert 'data-live="1"' in html and "dashboard/dashboard.js" in html
    assert re.search(r'id="train-now" disabled', html)


def test_without_a_run_in_flight_the_page_stays_still(owner, tenant):
    version(tenant, status="failed", status_reason="NotEnoughData: 3 usable events")
    html = client_for(owner).get("/training").content.decode()
    assert 'data-live="0"' in html and 'data-live="1"' not in html
    assert 'class="badge red">Failed' in html and "3 usable events" in html
    assert re.search(r'id="train-now"\s*>', html)


def test_train_now_queues_a_run_for_owners(owner, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(owner).post("/training/start", follow=True)
    [queued] = versions(tenant)
    assert (queued.status, queued.trigger) == ("queued", "dashboard")
    assert len(callbacks) == 1
    assert "Model 1 is queued" in response.content.decode()  # the shop's first version


def test_train_now_refuses_a_second_run_and_says_why(owner, models_a):
    response = client_for(owner).post("/training/start", follow=True)
    assert "one run at a time" in response.content.decode()
    assert len(versions(models_a[0].tenant)) == 3


def test_members_cannot_train(member, tenant):
    assert client_for(member).post("/training/start").status_code == 403
    assert versions(tenant) == []


def test_train_now_is_post_only_and_needs_the_csrf_token(owner, tenant):
    assert client_for(owner).get("/training/start").status_code == 405
    assert client_for(owner, enforce_csrf_checks=True).post("/training/start").status_code == 403
    assert versions(tenant) == []


# --- schedule -------------------------------------------------------------------------------------------------


def test_owners_set_the_retraining_schedule(owner, tenant):
    client = client_for(owner)
    assert "No schedule" in client.get("/training").content.decode()
    client.post("/training/schedule", {"enabled": "on", "interval_hours": "12", "min_new_events": "500"})
    schedule = TrainingSchedule.objects.for_tenant(tenant).get()
    assert (schedule.enabled, schedule.interval_hours, schedule.min_new_events) == (True, 12, 500)
    assert "Every <strong>12 h</strong>" in client.get("/training").content.decode()

    client.post("/training/schedule", {"interval_hours": "12", "min_new_events": "500"})  # unticked: off
    schedule.refresh_from_db()
    assert schedule.enabled is False


def test_a_bad_schedule_is_refused_with_the_reason(owner, tenant):
    response = client_for(owner).post(
        "/training/schedule", {"enabled": "on", "interval_hours": "0", "min_new_events": "-3"}, follow=True
    )
    html = response.content.decode()
    assert "Every (hours)" in html and "greater than or equal to 1" in html
    assert not TrainingSchedule.objects.for_tenant(tenant).exists()


def test_members_cannot_change_the_schedule(member, tenant):
    response = client_for(member).post("/training/schedule", {"enabled": "on", "interval_hours": "1",
                                                              "min_new_events": "0"})
    assert response.status_code == 403
    assert not TrainingSchedule.objects.for_tenant(tenant).exists()


def test_the_last_schedule_decision_is_shown(owner, tenant):
    from django.utils import timezone

    TrainingSchedule.objects.create(
        tenant=tenant, interval_hours=24, min_new_events=1000, last_checked_at=timezone.now(),
        last_outcome="skipped: 12 new events after 2026-01-01 00:00 UTC; at least 1000 are needed",
    )
    html = client_for(owner).get("/training").content.decode()
    assert "skipped: 12 new events" in html


# --- model detail, activation, rollback -------------------------------------------------------------------------


def test_model_detail_shows_metrics_and_the_loss_curve_per_phase_and_model(member, models_a):
    worse = models_a[1]
    html = client_for(member).get(f"/models/{worse.pk}").content.decode()
    metrics = html[html.index('id="metrics"'):html.index('id="details"')]
    assert "NDCG@10" in metrics and "0.1000" in metrics and "0.2000" in metrics  # this one and the serving one
    charts = html[html.index('id="loss-curve"'):html.index('id="metrics"')].split('class="loss-chart"')[1:]
    # One chart per model (their losses differ in scale), one line per phase; the refit is a line of its own.
    assert ["Retrieval training loss" in charts[0], "Ranker training loss" in charts[1]] == [True, True]
    assert re.findall(r'data-series="([^"]+)"', charts[0]) == [
        "evaluated model", "evaluated model, refit", "served model"
    ]
    assert re.findall(r'data-series="([^"]+)"', charts[1]) == ["evaluated model"]
    assert len(re.findall(r'class="point"', charts[1])) == 2


def test_model_detail_puts_each_metric_in_words_beside_the_most_popular_baseline(member, tenant):
    shown = version(tenant, status="ready", curve=CURVE, metrics={
        "ndcg@10": 0.178, "recall@10": 0.11, "recall@100": 0.383, "popular_ndcg@10": 0.083,
        "popular_recall@10": 0.041, "ranker_auc": 0.789,
    })
    html = client_for(member).get(f"/models/{shown.pk}").content.decode()
    metrics = html[html.index('id="metrics"'):html.index('id="details"')]
    rows = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td><td class=\"num muted\">(.*?)</td>", metrics)
    by_label = {re.sub(r"<div.*", "", label): (value, baseline, label) for label, value, baseline in rows}
    assert by_label["NDCG@10"][:2] == ("0.1780", "0.0830")
    assert by_label["Recall@10"][:2] == ("0.1100", "0.0410")
    assert by_label["Recall@100"][1] == "\N{EN DASH}"  # no baseline figure stored for it
    assert "the top 10 caught 11" in by_label["Recall@10"][2]
    assert "the top 100 caught 38" in by_label["Recall@100"][2]
    assert "79 times in 100" in by_label["Ranker AUC"][2]
    assert not any(label.startswith("Popular") for label in by_label)  # the baseline is a column, not rows
    assert "by nature" in html[html.index('id="loss-note"'):]


def test_a_version_without_loss_points_says_so(owner, tenant):
    queued = version(tenant, status="queued")
    html = client_for(owner).get(f"/models/{queued.pk}").content.decode()
    assert "No loss recorded yet" in html and 'data-live="1"' in html


def test_activation_refused_shows_the_reason_and_force_overrides(owner, models_a):
    serving, worse, _ = models_a
    client = client_for(owner)

    refused = client.post(f"/models/{worse.pk}/activate", follow=True).content.decode()

    assert "Not activated" in refused and "regresses more than 5%" in refused
    # Versions are numbered per shop on the dashboard: no message names one by its id, which all shops share.
    assert "Model 1 keeps serving" in refused and not re.search(r"version \d", refused)
    notice = client.get(f"/models/{worse.pk}").content.decode()
    notice = notice[notice.index('id="refusal"'):]
    assert "against the active version&#x27;s 0.2000" in notice[:300] and not re.search(r"version \d", notice[:300])
    assert lifecycle.active_version(serving.tenant_id) == serving
    forced = client.post(f"/models/{worse.pk}/activate", {"force": "1"}, follow=True).content.decode()
    assert "Model 2 is now serving" in forced  # the shop's second version
    assert lifecycle.active_version(serving.tenant_id) == worse


def test_rollback_returns_to_the_earlier_version(owner, tenant):
    earlier = version(tenant, status="ready", metrics={"ndcg@10": 0.10})
    current = version(tenant, status="active", metrics={"ndcg@10": 0.30})
    client = client_for(owner)
    page = client.get(f"/models/{earlier.pk}").content.decode()
    assert 'id="rollback"' in page and 'id="activate"' not in page

    response = client.post(f"/models/{earlier.pk}/rollback", follow=True)

    assert "Rolled back" in response.content.decode()
    assert lifecycle.active_version(tenant.pk) == earlier
    current.refresh_from_db()
    assert current.status == "ready"


def test_members_cannot_activate_or_roll_back(member, models_a):
    serving, worse, _ = models_a
    client = client_for(member)
    assert client.post(f"/models/{worse.pk}/activate", {"force": "1"}).status_code == 403
    assert client.post(f"/models/{serving.pk}/rollback").status_code == 403
    assert lifecycle.active_version(serving.tenant_id) == serving


def test_a_failed_run_shows_why(owner, tenant):
    failed = version(tenant, status="failed", status_reason="worker lost: no heartbeat since 2026-01-01 10:00:00 UTC")
    html = client_for(owner).get(f"/models/{failed.pk}").content.decode()
    assert 'id="failure"' in html and "worker lost" in html
    assert 'id="activate"' not in html and 'id="rollback"' not in html


# --- how versions and durations read ------------------------------------------------------------------------------


def test_models_are_numbered_per_shop_not_by_the_shared_primary_key(owner, outsider, tenant, other_tenant):
    for _ in range(3):  # shop B's versions take the first primary keys
        version(other_tenant, status="archived")
    first = version(tenant, status="ready", metrics={"ndcg@10": 0.1})
    second = version(tenant, status="active", metrics={"ndcg@10": 0.2})
    third = version(tenant, status="ready", metrics={"ndcg@10": 0.15})
    assert first.pk > 3
    client = client_for(owner)
    runs = client.get("/training").content.decode()
    assert re.findall(r">Model (\d+)</a>", runs) == ["3", "2", "1"]
    assert f">Version {first.pk}<" not in runs
    models = client.get("/models").content.decode()
    assert re.findall(r">Model (\d+)</a>", models) == ["3", "2", "1"] and "Model 2 is serving now" in models
    detail = client.get(f"/models/{third.pk}").content.decode()
    assert "<h1>Model 3</h1>" in detail and "model 2 is serving" in detail and "Serving (model 2)" in detail
    rolled = client.post(f"/models/{first.pk}/rollback", follow=True).content.decode()
    assert "Rolled back: model 1 is serving again." in rolled
    # Shop B counts its own.
    assert re.findall(r">Model (\d+)</a>", client_for(outsider).get("/training").content.decode()) == ["3", "2", "1"]
    assert second.pk  # (serving before the rollback)


def test_durations_are_written_in_units(owner, tenant):
    started = dt.datetime(2016, 10, 16, 14, 0, tzinfo=dt.UTC)
    done = version(tenant, status="ready", started_at=started, finished_at=started + dt.timedelta(seconds=72.3),
                   metrics={"ndcg@10": 0.1234567, "train_seconds": 72.3})
    runs = client_for(owner).get("/training").content.decode()
    row = re.search(rf'id="run-{done.pk}".*?</tr>', runs, re.S).group(0)
    assert '<td class="num nowrap">1 min 12 s</td>' in row
    detail = client_for(owner).get(f"/models/{done.pk}").content.decode()
    assert re.search(r"<td>Training time</td><td class=\"num\">1 min 12 s</td>", detail)
    assert "72.3" not in detail and "<td class=\"num\">0.1235</td>" in detail
    assert "Oct 16, 2016, 14:01:12" in detail  # finished, with its year
