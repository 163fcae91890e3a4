"""Liveness of training runs: a worker proves it is alive by a heartbeat; runs whose heartbeat went stale
(the worker was killed, its machine lost) are marked failed so the tenant can train again.

The heartbeat comes from a thread beside the training, not from the trainers' progress reports: loading
a large tenant or evaluating it can take minutes without a report, and must not look like a dead worker.
The reaper touches only runs in `training`/`validating`; the active version is never in those states,
so a lost worker leaves the tenant's served model exactly as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from tenants.context import dangerously_all_tenants, tenant_context
from training.registry import storage
from training.registry.models import ModelVersion

log = logging.getLogger(__name__)
RUNNING = (ModelVersion.Status.TRAINING, ModelVersion.Status.VALIDATING)
LOST_REASON = "worker lost"


def heartbeat_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S)


def heartbeat_interval() -> float:
    """Several beats fit in one timeout, so one slow database write never gets a live run reaped."""
    return max(settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S / 5, 0.5)


def _last_sign_of_life() -> Coalesce:
    # A run killed before its first beat still has started_at (or, before that, created_at).
    return Coalesce("heartbeat_at", "started_at", "created_at")


def _stale(queryset, now: dt.datetime):
    return queryset.filter(LessThan(_last_sign_of_life(), now - heartbeat_timeout()), status__in=RUNNING)


def claim(tenant_id: int, version_id: int) -> bool:
    """Take `version` for this worker: it is queued, or running with a stale heartbeat (its worker died and
    the broker redelivered the message). False when another live worker has it or it has ended."""
    now = timezone.now()
    versions = ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id)
    # Each is one UPDATE: PostgreSQL re-checks its condition on the locked row, so of two deliveries of
    # the same message only one wins (the status or the fresh heartbeat stops the other).
    taken = versions.filter(status=ModelVersion.Status.QUEUED).update(
        status=ModelVersion.Status.TRAINING, started_at=now, heartbeat_at=now
    )
    if not taken:
        taken = _stale(versions, now).update(heartbeat_at=now)
    return bool(taken)


def release(tenant_id: int, version_id: int) -> None:
    """Give a claimed run back to the queue (before a retry). Best effort: if the database is what failed,
    the heartbeat goes stale instead and the reaper or the retry deals with the run."""
    try:
        ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id, status__in=RUNNING).update(
            status=ModelVersion.Status.QUEUED, heartbeat_at=None
        )
    except Exception:
        log.exception("could not release version %s", version_id)


def _beat(tenant_id: int, version_id: int, stop: threading.Event) -> None:
    try:
        with tenant_context(tenant_id):
            while not stop.wait(heartbeat_interval()):
                ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id, status__in=RUNNING).update(
                    heartbeat_at=timezone.now()
                )
    except Exception:  # a missed beat is the reaper's business, never the training's
        log.exception("heartbeat of version %s stopped", version_id)
    finally:
        connection.close()  # this thread's own connection


@contextlib.contextmanager
def heartbeat(tenant_id: int, version_id: int) -> Iterator[None]:
    """Beat for `version` while the block runs (a thread with its own database connection)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_beat, args=(tenant_id, version_id, stop), name=f"heartbeat-{version_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def reap_lost_runs(now: dt.datetime | None = None) -> list[int]:
    """Mark every run whose worker stopped beating as failed; returns their ids. Spans tenants (beat task)."""
    now = now or timezone.now()
    with dangerously_all_tenants():
        versions = ModelVersion.objects.dangerously_all_tenants()
        lost = list(
            _stale(versions, now).annotate(last=_last_sign_of_life()).values_list("pk", "tenant_id", "last")
        )
        reaped = []
        for pk, tenant_id, last in lost:
            # Conditional again: a beat that landed since the select keeps the run alive.
            updated = (
                _stale(versions.filter(pk=pk), now)
                .update(
                    status=ModelVersion.Status.FAILED,
                    status_reason=f"{LOST_REASON}: no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC",
                    finished_at=now,
                )
            )
            if updated:
                storage.discard(tenant_id, pk)  # half-written artifacts of a run nobody will finish
                reaped.append(pk)
    if reaped:
        log.warning("marked %d training run(s) failed after their worker was lost: %s", len(reaped), reaped)
    return reaped
