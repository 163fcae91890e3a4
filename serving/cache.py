"""Cached answers, checked against the generations they were computed under.

An answer is stored under a key that names only what was asked: the tenant, the customer (if any), the
endpoint and the request's shape. Beside the answer, the entry keeps its stamp: the customer's
generation, the tenant's rules generation and the active model version it was computed under. A lookup
reads the entry and the current generations in one MGET and serves the answer only when the stamps are
equal; anything else is a miss, and the fresh answer overwrites the entry.

- A customer's generation changes after their events are committed (a purchase must not keep showing
  the bought item), the tenant's rules generation after every rule, promotion, boost or settings write,
  the active version on activation. Each is a timestamp rather than a counter: one write, no
  read-modify-write race, and an expired generation cannot come back to an old value.
- The stamp is read before the answer is computed, so an answer computed while a change commits is stored
  under the old stamp and is never served after the change: no ordering between readers and writers is
  needed beyond "bump after commit".
- Every key of a tenant carries the hash tag `{<tenant id>}`, so the lookup's MGET and the batch bump's
  script touch a single Redis Cluster slot.

With Redis down (IGNORE_EXCEPTIONS), reads miss and writes are dropped: answers are served uncached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache

from core.redis_client import raw_redis
from serving.answer_keys import customer_prefix, tenant_prefix
from serving.registry_cache import active_version_cache_key, active_version_id

log = logging.getLogger(__name__)

# Must outlive every cached answer that depends on it.
GENERATION_TTL_SECONDS = 24 * 3600


def _generation_key(tenant_id: int, customer_external_id: str) -> str:
    digest = hashlib.sha256(customer_external_id.encode()).hexdigest()[:32]
    return f"{tenant_prefix(tenant_id)}gen:{digest}"


def _rules_generation_key(tenant_id: int) -> str:
    return f"{tenant_prefix(tenant_id)}rules-gen"


def customer_generation(tenant_id: int, customer_external_id: str | None) -> int:
    if not customer_external_id:
        return 0
    return int(cache.get(_generation_key(tenant_id, customer_external_id)) or 0)


# One script sets every key of a batch: a 10,000-event batch names thousands of customers, and set_many
# (a MULTI of one SET per key) is far slower. The keys are passed as KEYS and share the tenant's hash tag.
_BUMP_SCRIPT = "for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'EX', ARGV[2]) end return #KEYS"


def bump_customer_generation(tenant_id: int, customer_external_ids: Iterable[str]) -> None:
    """Invalidate the cached answers of these customers. Call after their events are committed."""
    stamp = time.time_ns()
    customers = {c for c in customer_external_ids if c}
    if not customers:
        return
    keys = [_generation_key(tenant_id, c) for c in customers]
    client = raw_redis()
    if client is None:
        cache.set_many(dict.fromkeys(keys, stamp), GENERATION_TTL_SECONDS)
        return
    try:
        # Stored as a bare integer, which is how django-redis stores ints, so cache.get reads it unchanged.
        client.eval(_BUMP_SCRIPT, len(keys), *(cache.make_key(k) for k in keys), stamp, GENERATION_TTL_SECONDS)
    except Exception:  # Redis down: like the cache API (IGNORE_EXCEPTIONS), drop the write
        log.warning("cache generations not bumped for %s customers of tenant %s", len(keys), tenant_id,
                    exc_info=True)


def rules_generation(tenant_id: int) -> int:
    """The tenant's rules generation (0 before the first rule write, or with Redis down)."""
    return int(cache.get(_rules_generation_key(tenant_id)) or 0)


def bump_rules_generation(tenant_id: int) -> None:
    """Invalidate every cached answer of the tenant and make each process recompile its rules. Call after
    a rule, promotion, boost or settings write commits."""
    cache.set(_rules_generation_key(tenant_id), time.time_ns(), GENERATION_TTL_SECONDS)


class Stamp(NamedTuple):
    """What an answer depends on besides its request: it is served only while all three are unchanged."""

    customer_generation: int
    rules_generation: int
    model_version: int | None


@dataclass(frozen=True)
class Lookup:
    """Where an answer lives, the stamp it must carry to be served, and the cached answer if it does."""

    key: str
    stamp: Stamp
    answer: dict | None


def _answer_key(tenant_id: int, kind: str, shape: dict[str, Any], customer: str | None) -> str:
    """A customer's answers live under the prefix that GDPR erasure deletes (recs/answer_keys.py)."""
    shape_hash = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:32]
    head = customer_prefix(tenant_id, customer) if customer else tenant_prefix(tenant_id)
    return f"{head}{kind}:{shape_hash}"


def lookup_answer(tenant_id: int, kind: str, shape: dict[str, Any], *, customer: str | None = None) -> Lookup:
    """The answer's key and current stamp, and the cached answer when its stamp is current: one MGET."""
    key = _answer_key(tenant_id, kind, shape, customer)
    rules_key, version_key = _rules_generation_key(tenant_id), active_version_cache_key(tenant_id)
    wanted = [key, rules_key, version_key]
    if customer:
        wanted.append(_generation_key(tenant_id, customer))
    got = cache.get_many(wanted) if settings.RECSVC_RECS_CACHE_SECONDS > 0 else {}
    cached_version = got.get(version_key)
    # A missing version id (expired, or Redis down) is read from the database and cached again.
    version = active_version_id(tenant_id) if cached_version is None else (int(cached_version) or None)
    generation = int(got.get(wanted[3]) or 0) if customer else 0
    stamp = Stamp(generation, int(got.get(rules_key) or 0), version)
    entry = got.get(key)
    fresh = isinstance(entry, dict) and tuple(entry.get("stamp", ())) == stamp
    return Lookup(key, stamp, entry["answer"] if fresh else None)


def answer_ttl(max_seconds: float | None = None) -> int:
    """Seconds a cached answer lives: RECSVC_RECS_CACHE_SECONDS, capped by `max_seconds` (e.g. the time
    until a promotion starts or ends, so a cached answer never hides that change). 0: do not cache."""
    ttl = settings.RECSVC_RECS_CACHE_SECONDS
    if max_seconds is not None:
        ttl = min(ttl, int(max_seconds))
    return max(ttl, 0)


def store_answer(lookup: Lookup, answer: dict, *, max_seconds: float | None = None) -> bool:
    """Store an answer computed after `lookup`, under its key and stamp, for answer_ttl(max_seconds).
    False when it is not to be cached (a TTL of 0)."""
    ttl = answer_ttl(max_seconds)
    if ttl > 0:
        cache.set(lookup.key, {"stamp": tuple(lookup.stamp), "answer": answer}, ttl)
    return ttl > 0
