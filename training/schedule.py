"""Periodic retraining per tenant (celery beat calls `retrain_due_tenants`).

A tenant's schedule is due `interval_hours` after the later of its last check and its newest run (a
manual run resets the clock). A due tenant gets a new run unless one is in flight or fewer than
`min_new_events` events arrived after the data window of its newest trained version; either way the
decision and its reason are stored on the schedule, and the next check is an interval later.

Nothing is checked unless celery beat runs (the embedded default of `make demo` runs none). Each sweep of
`retrain_due_tenants` leaves its time in the cache, so that a page showing a schedule can tell whether a
scheduler is checking it (`scheduler_seen`), instead of announcing a next check that will never come.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from recs.models import Event
from tenants.context import dangerously_all_tenants, tenant_context
from training.hyperparameters import InvalidHyperparameters, clean_hyperparameters
from training.registry import lifecycle
from training.registry.models import ModelVersion, TrainingSchedule
from training.runs import RunInProgress, in_flight, request_run

log = logging.getLogger(__name__)
TRAINED = (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE, ModelVersion.Status.ARCHIVED)


# When beat last ran the sweep (a POSIX time), for every tenant's page.
SWEEP_SEEN_KEY = "training:retrain-sweep:seen"
# A scheduler that missed this many of its periods (RECSVC_RETRAIN_CHECK_EVERY_S) is taken for absent.
MISSED_SWEEPS = 2


def scheduler_seen(now: dt.datetime) -> tuple[bool, dt.datetime | None]:
    """(whether a scheduler is sweeping, when it last did): it is when its last sweep is at most
    MISSED_SWEEPS periods (and a minute) before `now`."""
    stamp = cache.get(SWEEP_SEEN_KEY)
    if not isinstance(stamp, int | float):
        return False, None
    seen = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    period = dt.timedelta(seconds=MISSED_SWEEPS * settings.RECSVC_RETRAIN_CHECK_EVERY_S + 60)
    return now - seen <= period, seen


def schedule_for(tenant_id: int, now: dt.datetime | None = None) -> TrainingSchedule | None:
    """The tenant's schedule, with `scheduler_running` and `scheduler_seen_at` (see scheduler_seen) for the
    page that shows it."""
    schedule = TrainingSchedule.objects.for_tenant(tenant_id).first()
    if schedule is not None:
        schedule.scheduler_running, schedule.scheduler_seen_at = scheduler_seen(now or timezone.now())
    return schedule


def next_check_at(schedule: TrainingSchedule) -> dt.datetime | None:
    """When the schedule is next due (None: now, it never ran)."""
    newest = ModelVersion.objects.for_tenant(schedule.tenant_id).order_by("-created_at").first()
    anchors = [t for t in (schedule.last_checked_at, newest.created_at if newest else None) if t is not None]
    return max(anchors) + dt.timedelta(hours=schedule.interval_hours) if anchors else None


def new_events_since_last_model(tenant_id: int, *, enough: int) -> tuple[int, dt.datetime | None]:
    """Events after the newest trained version's data window, counted up to `enough` (a bounded scan)."""
    last = (
        ModelVersion.objects.for_tenant(tenant_id)
        .filter(status__in=TRAINED, data_end__isnull=False)
        .order_by("-data_end")
        .first()
    )
    events = Event.objects.for_tenant(tenant_id)
    since = last.data_end if last else None
    if since is not None:
        # data_end is the newest event's time truncated to the second.
        events = events.filter(ts__gte=since + dt.timedelta(seconds=1))
    return events.order_by()[:enough].count(), since


def _hyperparameters(tenant_id: int) -> dict:
    """A scheduled run retrains the configuration that serves (defaults when nothing is active)."""
    active = lifecycle.active_version(tenant_id)
    return dict(active.hyperparameters) if active else {}


def check_tenant(tenant_id: int, now: dt.datetime | None = None) -> str | None:
    """Start or skip a due tenant's retraining and record why; None when it is not due (or disabled)."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = (
            TrainingSchedule.objects.for_tenant(tenant_id)
            .select_for_update(skip_locked=True)  # a concurrent check of the same tenant just skips it
            .filter(enabled=True)
            .first()
        )
        if schedule is None:
            return None
        due_at = next_check_at(schedule)
        if due_at is not None and due_at > now:
            return None
        outcome = _decide(tenant_id, schedule)
        schedule.last_checked_at = now
        schedule.last_outcome = outcome
        schedule.save(update_fields=["last_checked_at", "last_outcome", "updated_at"])
    return outcome


def _decide(tenant_id: int, schedule: TrainingSchedule) -> str:
    running = in_flight(tenant_id)
    if running is not None:
        return f"skipped: version {running.pk} is {running.status}"
    new, since = new_events_since_last_model(tenant_id, enough=schedule.min_new_events)
    if new < schedule.min_new_events:
        after = f"after {since:%Y-%m-%d %H:%M} UTC" if since else "in total"
        return f"skipped: {new} new events {after}; at least {schedule.min_new_events} are needed"
    params = _hyperparameters(tenant_id)
    try:
        clean_hyperparameters(params)
    except InvalidHyperparameters:
        params = {}  # e.g. set through `manage.py train --params`, which the API's whitelist never saw
    try:
        version = request_run(tenant_id, trigger="schedule", hyperparameters=params)
    except RunInProgress as exc:
        return f"skipped: {exc}"
    after = f"after {since:%Y-%m-%d %H:%M} UTC" if since else "in total"
    return f"started version {version.pk}: at least {new} new events {after}"


def retrain_due_tenants(now: dt.datetime | None = None) -> dict[str, int]:
    """Check every enabled schedule; one tenant's failure never stops the others. `now` is the clock (tests
    pass theirs)."""
    now = now or timezone.now()
    cache.set(SWEEP_SEEN_KEY, now.timestamp(), timeout=None)
    with dangerously_all_tenants():  # only to list the schedules; each check runs as its tenant
        tenant_ids = list(
            TrainingSchedule.objects.dangerously_all_tenants().filter(enabled=True).values_list("tenant_id", flat=True)
        )
    counts = {"started": 0, "skipped": 0, "not_due": 0, "errors": 0}
    for tenant_id in tenant_ids:
        try:
            with tenant_context(tenant_id):
                outcome = check_tenant(tenant_id, now)
        except Exception:
            log.exception("scheduled retraining check of tenant %s failed", tenant_id)
            counts["errors"] += 1
            continue
        key = "not_due" if outcome is None else outcome.split(":")[0].split(" ")[0]
        counts[key if key in counts else "errors"] += 1
    return counts
