"""Scheduled retraining: due tenants get a run, unless too little new data arrived (the reason is recorded)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.context import dangerously_all_tenants
from tests.factories import EventFactory, TenantFactory
from training import schedule
from training.registry.models import ModelVersion, TrainingSchedule
from training.tasks import retrain_due_tenants

pytestmark = pytest.mark.django_db
NOW = timezone.now()
DATA_END = NOW - dt.timedelta(days=3)


@pytest.fixture
def shop(all_tenants):
    return TenantFactory()


def events(tenant, n: int, at: dt.datetime) -> None:
    EventFactory.create_batch(n, tenant=tenant, ts=at)


def plan(tenant, **fields) -> TrainingSchedule:
    return TrainingSchedule.objects.create(tenant=tenant, **{"interval_hours": 24, "min_new_events": 5, **fields})


def trained(tenant, *, created: dt.datetime, **fields) -> ModelVersion:
    v = ModelVersion.objects.create(
        tenant=tenant, status=fields.pop("status", "active"), data_end=DATA_END, metrics={"ndcg@10": 0.1}, **fields
    )
    ModelVersion.objects.for_tenant(tenant).filter(pk=v.pk).update(created_at=created)
    return v


def runs(tenant, trigger: str = "schedule") -> list[ModelVersion]:
    return list(ModelVersion.objects.for_tenant(tenant).filter(trigger=trigger))


def test_too_little_new_data_skips_and_says_why(shop):
    trained(shop, created=NOW - dt.timedelta(days=2))
    events(shop, 10, DATA_END - dt.timedelta(hours=1))  # already in the last model's window
    events(shop, 3, DATA_END + dt.timedelta(hours=1))
    s = plan(shop)

    outcome = schedule.check_tenant(shop.pk, NOW)

    assert outcome.startswith("skipped: 3 new events after")
    assert "at least 5 are needed" in outcome
    s.refresh_from_db()
    assert (s.last_checked_at, s.last_outcome) == (NOW, outcome)
    assert runs(shop) == []


def test_a_due_tenant_with_enough_new_data_gets_a_run(shop, django_capture_on_commit_callbacks):
    trained(shop, created=NOW - dt.timedelta(days=2), hyperparameters={"retrieval": {"dim": 16}})
    events(shop, 5, DATA_END + dt.timedelta(hours=1))
    s = plan(shop)

    with django_capture_on_commit_callbacks() as callbacks:
        outcome = schedule.check_tenant(shop.pk, NOW)

    [run] = runs(shop)
    assert outcome == f"started version {run.pk}: at least 5 new events after {DATA_END:%Y-%m-%d %H:%M} UTC"
    assert run.status == "queued" and run.trigger == "schedule"
    assert run.hyperparameters == {"retrieval": {"dim": 16}}  # the configuration that serves
    assert len(callbacks) == 1
    s.refresh_from_db()
    assert s.last_outcome == outcome


def test_a_tenant_never_trained_counts_every_event(shop):
    events(shop, 4, DATA_END)
    plan(shop)
    assert schedule.check_tenant(shop.pk, NOW) == "skipped: 4 new events in total; at least 5 are needed"
    events(shop, 1, DATA_END)
    assert schedule.check_tenant(shop.pk, NOW + dt.timedelta(hours=25)).startswith("started version")


def test_not_due_until_an_interval_after_the_newest_run(shop):
    trained(shop, created=NOW - dt.timedelta(hours=23))  # a manual run an hour short of the interval
    events(shop, 50, DATA_END + dt.timedelta(hours=1))
    s = plan(shop)
    assert schedule.check_tenant(shop.pk, NOW) is None
    s.refresh_from_db()
    assert s.last_checked_at is None and runs(shop) == []
    assert schedule.check_tenant(shop.pk, NOW + dt.timedelta(hours=1, minutes=1)).startswith("started")


def test_after_a_skip_the_next_check_is_an_interval_later(shop):
    trained(shop, created=NOW - dt.timedelta(days=5))
    plan(shop, interval_hours=6)
    assert schedule.check_tenant(shop.pk, NOW).startswith("skipped")
    events(shop, 5, DATA_END + dt.timedelta(hours=1))
    assert schedule.check_tenant(shop.pk, NOW + dt.timedelta(hours=5)) is None
    assert schedule.check_tenant(shop.pk, NOW + dt.timedelta(hours=6)).startswith("started")


def test_a_run_in_flight_is_not_doubled(shop):
    trained(shop, created=NOW - dt.timedelta(days=5))
    ModelVersion.objects.create(tenant=shop, status="training", trigger="api")
    ModelVersion.objects.for_tenant(shop).filter(status="training").update(created_at=NOW - dt.timedelta(days=2))
    events(shop, 50, DATA_END + dt.timedelta(hours=1))
    plan(shop)
    assert "is training" in schedule.check_tenant(shop.pk, NOW)
    assert runs(shop) == []


def test_a_disabled_schedule_does_nothing(shop):
    events(shop, 50, DATA_END)
    plan(shop, enabled=False)
    assert schedule.check_tenant(shop.pk, NOW) is None
    assert runs(shop) == []


def test_hyperparameters_the_whitelist_refuses_fall_back_to_defaults(shop):
    # e.g. an active version trained with `manage.py train --params`, which the API never validated.
    trained(shop, created=NOW - dt.timedelta(days=2), hyperparameters={"retrieval": {"hidden_layers": [3]}})
    events(shop, 5, DATA_END + dt.timedelta(hours=1))
    plan(shop)
    assert schedule.check_tenant(shop.pk, NOW).startswith("started")
    assert runs(shop)[0].hyperparameters == {}


def test_one_schedule_per_tenant(shop):
    plan(shop)
    with pytest.raises(IntegrityError), transaction.atomic():
        plan(shop)


def test_the_beat_task_checks_every_tenant_as_itself(db):
    with dangerously_all_tenants():
        due, quiet, off, unplanned = (TenantFactory() for _ in range(4))
        for t in (due, quiet, off, unplanned):
            trained(t, created=NOW - dt.timedelta(days=2))
        events(due, 6, DATA_END + dt.timedelta(hours=1))
        events(quiet, 2, DATA_END + dt.timedelta(hours=1))
        events(unplanned, 50, DATA_END + dt.timedelta(hours=1))
        plan(due)
        plan(quiet)
        plan(off, enabled=False)

    counts = retrain_due_tenants.delay().get()

    assert counts == {"started": 1, "skipped": 1, "not_due": 0, "errors": 0}
    with dangerously_all_tenants():
        assert [len(runs(t)) for t in (due, quiet, off, unplanned)] == [1, 0, 0, 0]
        assert TrainingSchedule.objects.for_tenant(quiet).get().last_outcome.startswith("skipped: 2 new events")
