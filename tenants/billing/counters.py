"""Per-shop, per-month usage counters in Redis: one hash `usage:<tenant>:<YYYYMM>`, a field per meter.

The hot path is one HINCRBY (pipelined with an EXPIRE) per request. Redis is a cache here and may lose a
hash (restart without persistence, eviction); the reporting task therefore snapshots the counters into
PostgreSQL and, when it finds a hash without its `_seeded` mark, adds the last snapshot back first
(`seed_and_read`). At most the usage between the last snapshot and the loss goes uncounted - which
under-bills, never over-bills.

Without Redis (the embedded demo) the same operations run on Django's cache API.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from django.core.cache import cache

from core.redis_client import raw_redis
from tenants.billing.periods import label

log = logging.getLogger(__name__)

# Long enough to report the previous month during the next one (the reporting task reads both).
TTL_SECONDS = 70 * 24 * 3600
SEEDED = "_seeded"

# KEYS[1] = hash; ARGV = ttl, then meter/baseline pairs. Adds the baseline once per hash lifetime.
_SEED_AND_READ = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
    for i = 3, #ARGV, 2 do
        redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
    end
    redis.call('HSET', KEYS[1], ARGV[2], 1)
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
"""


def key(tenant_id: int, period: dt.date) -> str:
    return f"usage:{tenant_id}:{label(period)}"


def _decode(raw: Mapping) -> dict[str, int]:
    out = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        if name != SEEDED:
            out[name] = int(value)
    return out


def queue_incr(pipe: Any, tenant_id: int, period: dt.date, meter: str, n: int) -> None:
    """Queue the count of `n` units on a Redis pipeline."""
    name = key(tenant_id, period)
    pipe.hincrby(name, meter, n)
    pipe.expire(name, TTL_SECONDS, nx=True)


def incr(tenant_id: int, period: dt.date, meter: str, n: int) -> None:
    """Count `n` units. Never raises: usage counting must not fail the request it counts."""
    name = key(tenant_id, period)
    try:
        redis = raw_redis()
        if redis is not None:
            pipe = redis.pipeline(transaction=False)
            queue_incr(pipe, tenant_id, period, meter, n)
            pipe.execute()
        else:
            cache.add(f"{name}:{meter}", 0, TTL_SECONDS)
            cache.incr(f"{name}:{meter}", n)
    except Exception:
        log.warning("usage counter unavailable; %s units of %s for tenant %s not counted", n, meter, tenant_id,
                    exc_info=True)


def read(tenant_id: int, period: dt.date, meters: list[str]) -> dict[str, int] | None:
    """Live counts per meter (0 when never counted); None when the counter store cannot be reached."""
    name = key(tenant_id, period)
    try:
        redis = raw_redis()
        if redis is not None:
            values = redis.hmget(name, meters)
            return {m: int(v or 0) for m, v in zip(meters, values, strict=True)}
        found = cache.get_many([f"{name}:{m}" for m in meters])
        return {m: int(found.get(f"{name}:{m}") or 0) for m in meters}
    except Exception:
        log.warning("usage counter unavailable for tenant %s", tenant_id, exc_info=True)
        return None


def seed_and_read(tenant_id: int, period: dt.date, baseline: Mapping[str, int]) -> dict[str, int]:
    """Live counts, after adding `baseline` (the last snapshot) if the hash was created since it was taken.

    Raises when the store is unreachable: the caller (a task) retries later.
    """
    name = key(tenant_id, period)
    redis = raw_redis()
    if redis is not None:
        args: list = [TTL_SECONDS, SEEDED]
        for meter, value in baseline.items():
            args += [meter, int(value)]
        flat = redis.eval(_SEED_AND_READ, 1, name, *args)
        return {**dict.fromkeys(baseline, 0), **_decode(dict(zip(flat[::2], flat[1::2], strict=True)))}
    # Cache API: not atomic, good enough for the single-process embedded default.
    if cache.add(f"{name}:{SEEDED}", 1, TTL_SECONDS):
        for meter, value in baseline.items():
            if value:
                cache.add(f"{name}:{meter}", 0, TTL_SECONDS)
                cache.incr(f"{name}:{meter}", int(value))
    found = cache.get_many([f"{name}:{m}" for m in baseline])
    return {m: int(found.get(f"{name}:{m}") or 0) for m in baseline}
