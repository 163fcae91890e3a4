"""Served answers from the Redis stream into `recs_servedanswer`, in batches, by a worker.

The worker reads with a consumer group (XREADGROUP) and acknowledges an entry (XACK, then XDEL so the stream
holds only what is not stored yet) only after the rows are committed. A worker killed between the commit and
the acknowledgement leaves the entries pending; a later run claims entries pending longer than
`RECLAIM_IDLE_MS` (XAUTOCLAIM) and stores them again, which stores nothing twice (unique recommendation id
per shop, ON CONFLICT DO NOTHING). RECLAIM_IDLE_MS exceeds the task's hard time limit, so a run never claims
the entries another run is still storing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from core.redis_client import raw_redis
from recs.attribution.stream import GROUP, ServedRecord, decode, stream_key
from recs.models import ServedAnswer
from tenants.context import tenant_context
from tenants.models import Tenant

log = logging.getLogger(__name__)

BATCH = 2_000
# A run stops reading after this long (below the task's soft time limit, STORE_TIME_LIMIT_S).
RUN_SECONDS = 20.0
STORE_TIME_LIMIT_S = 60
RECLAIM_IDLE_MS = (STORE_TIME_LIMIT_S + 60) * 1000


@dataclass
class StoreRun:
    read: int = 0
    stored: int = 0  # rows inserted (a redelivered entry already stored is read, not stored)
    malformed: int = 0  # entries this code cannot read: acknowledged and dropped
    failed: int = 0  # entries left pending (their shop's insert failed): retried after RECLAIM_IDLE_MS


def store_answers(records: Iterable[ServedRecord]) -> int:
    """Insert the records, one transaction per shop; a record already stored is skipped. Records of a shop
    that no longer exists are dropped. Returns the rows inserted."""
    by_tenant: dict[int, list[ServedRecord]] = defaultdict(list)
    for record in records:
        by_tenant[record.tenant_id].append(record)
    if not by_tenant:
        return 0
    existing = set(Tenant.objects.filter(pk__in=list(by_tenant)).values_list("pk", flat=True))
    inserted = 0
    for tenant_id, rows in by_tenant.items():
        if tenant_id not in existing:
            log.info("%s served answers of deleted tenant %s dropped", len(rows), tenant_id)
            continue
        inserted += _insert(tenant_id, rows)
    return inserted


def _insert(tenant_id: int, rows: list[ServedRecord]) -> int:
    objects = [
        ServedAnswer(
            tenant_id=tenant_id, recommendation_id=r.recommendation_id, served_at=r.served_at, endpoint=r.endpoint,
            variant=r.variant, model_version=r.model_version, reason=r.reason, customer_external_id=r.customer_id,
            session_id=r.session_id, items=list(r.items), propensities=list(r.propensities),
        )
        for r in rows
    ]
    with tenant_context(tenant_id), transaction.atomic():
        before = ServedAnswer.objects.for_tenant(tenant_id).filter(
            recommendation_id__in=[r.recommendation_id for r in rows]).count()
        ServedAnswer.objects.for_tenant(tenant_id).bulk_create(objects, ignore_conflicts=True, batch_size=BATCH)
    return len({r.recommendation_id for r in rows}) - before


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _ensure_group(client: Any, key: str) -> None:
    # From the stream's start: entries appended before the group existed (a flushed Redis, the first
    # deploy) are stored too. MKSTREAM: the stream may not exist yet.
    try:
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
    except Exception as error:  # BUSYGROUP: it exists
        if "BUSYGROUP" not in str(error):
            raise


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _handle(client: Any, key: str, entries: list, run: StoreRun) -> None:
    run.read += len(entries)
    records: list[tuple[str, ServedRecord]] = []
    done: list[str] = []
    for raw_id, raw_fields in entries:
        entry_id = _text(raw_id)
        if raw_fields is None:  # deleted while pending
            done.append(entry_id)
            continue
        try:
            records.append((entry_id, decode(entry_id, {_text(k): _text(v) for k, v in raw_fields.items()})))
        except (KeyError, TypeError, ValueError):
            log.warning("served-answer entry %s unreadable, dropped: %r", entry_id, raw_fields)
            run.malformed += 1
            done.append(entry_id)
    by_tenant: dict[int, list[tuple[str, ServedRecord]]] = defaultdict(list)
    for entry_id, record in records:
        by_tenant[record.tenant_id].append((entry_id, record))
    for tenant_rows in by_tenant.values():
        try:
            run.stored += store_answers(r for _, r in tenant_rows)
        except Exception:
            log.exception("served answers of tenant %s not stored; retried later", tenant_rows[0][1].tenant_id)
            run.failed += len(tenant_rows)
            continue
        done.extend(entry_id for entry_id, _ in tenant_rows)
    if done:
        pipe = client.pipeline(transaction=False)
        pipe.xack(key, GROUP, *done)
        pipe.xdel(key, *done)
        pipe.execute()


def drain(*, consumer: str | None = None, batch: int = BATCH, run_seconds: float = RUN_SECONDS,
          reclaim_idle_ms: int = RECLAIM_IDLE_MS) -> StoreRun:
    """Store what the stream holds: first the entries a dead run left pending, then new ones, batch by
    batch, until the stream is empty or `run_seconds` have passed. Without Redis there is no stream (the
    embedded default stores each answer as it is served)."""
    run = StoreRun()
    client = raw_redis()
    if client is None:
        return run
    key, consumer = stream_key(), consumer or consumer_name()
    _ensure_group(client, key)
    deadline = time.monotonic() + run_seconds
    start = "0-0"
    while time.monotonic() < deadline:
        # XAUTOCLAIM's answer: the cursor, the claimed entries, and (Redis 7) ids deleted meanwhile.
        start, claimed, *_ = client.xautoclaim(key, GROUP, consumer, reclaim_idle_ms, start_id=start, count=batch)
        if claimed:
            _handle(client, key, claimed, run)
        if _text(start) == "0-0":
            break
    while time.monotonic() < deadline:
        got = client.xreadgroup(GROUP, consumer, {key: ">"}, count=batch)
        entries = got[0][1] if got else []
        if not entries:
            break
        _handle(client, key, entries, run)
    return run
