"""'Retrain automatically' on the training page says what will happen: the box is ticked only when a schedule
is on, the next check is announced only while celery beat sweeps (training.schedule.scheduler_seen), and the
announced time is when the sweep starts the check (clocks passed in)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from training import schedule
from training.registry.models import TrainingSchedule

pytestmark = pytest.mark.django_db
T = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def checkbox(html: str) -> str:
    return re.search(r'<input type="checkbox" name="enabled"[^>]*>', html).group(0)


def test_without_a_schedule_the_box_is_not_ticked(owner):
    html = client_for(owner).get("/training").content.decode()
    assert "No schedule" in html
    assert "checked" not in checkbox(html)  # nothing retrains without a schedule row


def test_a_schedule_is_on_only_if_ticked(owner, tenant):
    client = client_for(owner)
    client.post("/training/schedule", {"interval_hours": "24", "min_new_events": "10"})  # saved, not ticked
    assert TrainingSchedule.objects.for_tenant(tenant).get().enabled is False
    html = client.get("/training").content.decode()
    assert "Switched off" in html and "checked" not in checkbox(html)
    client.post("/training/schedule", {"enabled": "on", "interval_hours": "24", "min_new_events": "10"})
    assert 'checked' in checkbox(client.get("/training").content.decode())


def test_the_sweep_is_seen_for_two_periods_by_the_given_clock(settings):
    settings.RECSVC_RETRAIN_CHECK_EVERY_S = 600
    assert schedule.scheduler_seen(T) == (False, None)
    schedule.retrain_due_tenants(now=T)
    assert schedule.scheduler_seen(T + dt.timedelta(minutes=21)) == (True, T)
    assert schedule.scheduler_seen(T + dt.timedelta(minutes=21, seconds=1)) == (False, T)


def test_no_next_check_is_announced_while_beat_is_not_running(owner, member, tenant):
    TrainingSchedule.objects.create(tenant=tenant, interval_hours=24, min_new_events=10)
    for user in (owner, member):
        html = client_for(user).get("/training").content.decode()
        assert "No retraining will start: celery beat is not running." in html
        assert "No scheduler has checked since this service started." in html
        assert "Next check" not in html and "First check" not in html

    schedule.retrain_due_tenants(now=timezone.now() - dt.timedelta(days=1))  # a beat that stopped yesterday
    html = client_for(owner).get("/training").content.decode()
    assert "celery beat is not running" in html and re.search(r"The scheduler last checked 1\sday ago\.", html)


def test_the_announced_next_check_is_when_the_sweep_checks(owner, tenant):
    now = timezone.now()
    last = now - dt.timedelta(hours=1)
    TrainingSchedule.objects.create(tenant=tenant, interval_hours=24, min_new_events=10, last_checked_at=last,
                                    last_outcome="skipped: 0 new events in total; at least 10 are needed")
    schedule.retrain_due_tenants(now=now)  # beat's sweep just ran (this shop is not due)
    html = client_for(owner).get("/training").content.decode()
    assert "celery beat is not running" not in html
    assert re.search(r"Next check in 2[23]\xa0hours", html), html[html.index('id="schedule-summary"'):][:300]

    # What the page announced is what the sweep does: nothing a second before, the check at the time.
    due = last + dt.timedelta(hours=24)
    assert schedule.retrain_due_tenants(now=due - dt.timedelta(seconds=1))["not_due"] == 1
    assert schedule.retrain_due_tenants(now=due)["skipped"] == 1
    assert TrainingSchedule.objects.for_tenant(tenant).get().last_checked_at == due


def test_only_owners_change_the_schedule_and_only_of_their_shop(member, outsider, tenant, other_tenant):
    assert client_for(member).post("/training/schedule", {"enabled": "on", "interval_hours": "1",
                                                          "min_new_events": "0"}).status_code == 403
    client_for(outsider).post("/training/schedule", {"enabled": "on", "interval_hours": "2", "min_new_events": "0"})
    assert not TrainingSchedule.objects.for_tenant(tenant).exists()
    assert TrainingSchedule.objects.for_tenant(other_tenant).get().interval_hours == 2
