"""Liveness of training runs: a worker proves it is alive by a heartbeat; runs whose heartbeat went stale
(the worker was killed, its machine lost) are marked failed so the tenant can train again.

The heartbeat comes from a thread beside the training, not from the trainers' progress reports: loading
a large tenant or evaluating it can take minutes without a report, and must not look like a dead worker.
The reaper touches only runs in `training`/`validating`; the active version is never in those states,
so a lost worker leaves the tenant's served model exactly as it was.

A run can also be lost before any worker saw it: its broker message vanished (a Redis restart without
persistence, a purged queue), and the run sits in `queued`, blocking its tenant (one run in flight per
tenant). After RECSVC_QUEUED_RUN_TIMEOUT_S the reaper sends the message once more (safe: `claim` lets one
delivery take a queued run); one more timeout later, still queued, the run is marked failed. For a queued
run `heartbeat_at` records that re-send (no worker has beaten for it yet; `claim` overwrites it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from tenants.context import dangerously_all_tenants, tenant_context
from training.registry import lifecycle, storage
from training.registry.models import ModelVersion

log = logging.getLogger(__name__)
RUNNING = (ModelVersion.Status.TRAINING, ModelVersion.Status.VALIDATING)
LOST_REASON = "worker lost"
NEVER_STARTED_REASON = "never started"


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


def queued_timeout() -> dt.timedelta:
    return dt.timedelta(seconds=settings.RECSVC_QUEUED_RUN_TIMEOUT_S)


def _send(tenant_id: int, version_id: int) -> None:
    lifecycle.send_task_by_name(lifecycle.TRAIN_TASK, tenant_id, version_id)  # by name: tasks import this module


def handle_stuck_queued_runs(now: dt.datetime | None = None) -> tuple[list[int], list[int]]:
    """Re-send the message of runs queued longer than the timeout (once), fail those still queued a timeout
    after the re-send. Returns (re-sent ids, failed ids). Spans tenants (beat task).

    Each step is one conditional UPDATE, so two reapers running at once re-send a run's message at most
    once between them, and a worker's claim that lands first (status no longer queued) wins over both."""
    now = now or timezone.now()
    cutoff = now - queued_timeout()
    timeout_s = settings.RECSVC_QUEUED_RUN_TIMEOUT_S
    resent, failed = [], []
    with dangerously_all_tenants():
        versions = ModelVersion.objects.dangerously_all_tenants().filter(status=ModelVersion.Status.QUEUED)
        first = versions.filter(heartbeat_at__isnull=True, created_at__lt=cutoff)
        for pk, tenant_id in list(first.values_list("pk", "tenant_id")):
            taken = first.filter(pk=pk).update(
                heartbeat_at=now,
                status_reason=f"no worker took the run within {timeout_s} s; its message was sent again",
            )
            if taken:
                # After the commit (the beat task runs in autocommit: at once), so the worker sees the row.
                transaction.on_commit(functools.partial(_send, tenant_id, pk))
                resent.append(pk)
        second = versions.filter(heartbeat_at__lt=cutoff)
        for pk, resent_at in list(second.values_list("pk", "heartbeat_at")):
            if second.filter(pk=pk).update(
                status=ModelVersion.Status.FAILED,
                status_reason=(
                    f"{NEVER_STARTED_REASON}: still queued {timeout_s} s after its message was sent again "
                    f"at {resent_at:%Y-%m-%d %H:%M:%S} UTC (is a worker consuming the training queue?)"
                ),
                finished_at=now,
            ):
                failed.append(pk)
    if resent or failed:
        log.warning("queued training runs: message re-sent for %s, marked failed: %s", resent, failed)
    return resent, failed


def reap_lost_runs(now: dt.datetime | None = None) -> list[int]:
    """Mark every run whose worker stopped beating as failed, and deal with runs stuck in the queue
    (`handle_stuck_queued_runs`); returns the ids marked failed. Spans tenants (beat task)."""
    now = now or timezone.now()
    _, never_started = handle_stuck_queued_runs(now)
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
    return reaped + never_started
