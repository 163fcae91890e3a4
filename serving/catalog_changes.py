"""The tenant's catalog change log in Redis: which product rows changed since a process last looked.

Serving processes keep the product rows they read for candidates (serving/candidate_rows.py); this log
tells them which of those rows a committed write has changed since. Every write of product rows
publishes the changed pks after its commit (`publish_changes`: recs.ingest.catalog.upsert_products, the
one writer of product rows, and erasure). Per tenant, Redis holds a counter and a stream whose entries
carry the counter's value as their id, so a reader that saw counter value `s` and now sees `c` reads
exactly the entries (s, c], and knows the log no longer reaches back when fewer come.

A new counter starts at the current time in microseconds rather than at zero: after Redis lost the log
(flushed, restarted empty), the counter is far ahead of every value a process saw, so the process finds
entries missing and drops everything it kept, instead of taking the new log's entries for the old ones.

Readers read the counter with `current_seq`. Both keys carry the tenant's hash tag, so the publishing
script touches a single Redis Cluster slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.core.cache import cache

from core.redis_client import raw_redis

log = logging.getLogger(__name__)

# Entries the stream keeps (approximately, trimmed by Redis); a process further behind drops its rows.
LOG_LENGTH = 1_000
# A write changing more products than this publishes "everything changed" instead of its pks.
MAX_PKS_PER_ENTRY = 5_000
RESET = "*"

# string.format: Lua would write the counter (a double here) with an exponent.
_PUBLISH_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[3], 'NX')
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-1', seq), 'p', ARGV[1])
return seq
"""


def seq_name(tenant_id: int) -> str:
    """The counter's name before the cache's prefix."""
    return f"recs:{{{int(tenant_id)}}}:catalog-seq"


def seq_key(tenant_id: int) -> str:
    return str(cache.make_key(seq_name(tenant_id)))


def _log_key(tenant_id: int) -> str:
    return str(cache.make_key(f"recs:{{{int(tenant_id)}}}:catalog-log"))


def publish_changes(tenant_id: int, product_pks: Iterable[int] | None) -> None:
    """Tell serving processes that these products' rows changed (None: any of the tenant's may have).
    Call after the commit. Without Redis nothing is kept across requests, so there is nothing to tell."""
    client = raw_redis()
    if client is None:
        return
    pks = None if product_pks is None else sorted({int(pk) for pk in product_pks})
    if pks is not None and not pks:
        return
    payload = RESET if pks is None or len(pks) > MAX_PKS_PER_ENTRY else ",".join(map(str, pks))
    try:
        client.eval(_PUBLISH_SCRIPT, 2, seq_key(tenant_id), _log_key(tenant_id), payload, LOG_LENGTH,
                    time.time_ns() // 1000)
    except Exception:  # the processes' rows then age out (RECSVC_CANDIDATE_ROWS_MAX_AGE_S)
        log.warning("catalog changes of tenant %s not published", tenant_id, exc_info=True)


def current_seq(tenant_id: int) -> int | None:
    """The tenant's counter now (0: nothing published yet; None: Redis cannot say)."""
    client = raw_redis()
    if client is None:
        return None
    try:
        raw = client.get(seq_key(tenant_id))
    except Exception:
        return None
    return int(raw) if raw is not None else 0


def changed_since(tenant_id: int, seen: int, current: int) -> set[int] | None:
    """The pks changed by the writes published after counter value `seen` up to `current`; None when the
    log cannot say (it no longer reaches back, an entry says everything changed, or Redis failed)."""
    if current == seen:
        return set()
    if current < seen or current - seen > LOG_LENGTH:
        return None
    client = raw_redis()
    if client is None:
        return None
    try:
        entries = client.xrange(_log_key(tenant_id), f"{seen + 1}-0", f"{current}-1")
    except Exception:
        return None
    if len(entries) != current - seen:
        return None
    changed: set[int] = set()
    for _, fields in entries:
        payload = fields.get(b"p", b"").decode()
        if payload == RESET:
            return None
        changed.update(map(int, payload.split(",")))
    return changed
