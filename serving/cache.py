"""Cached answers: keyed by tenant, customer, request shape, model version and the customer's generation.

A customer's generation changes whenever events of theirs are stored, so their cached answers stop
being found at once (a purchase must not keep showing the bought item); the old entries simply expire.
Customers are named by the shop's external id, which both the event and the recommendation paths hold
without a query. With Redis down (IGNORE_EXCEPTIONS), reads miss and writes are dropped: answers are
served uncached.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache

from recs.recommendation_cache import customer_prefix, tenant_prefix

# Must outlive every cached answer that depends on it.
GENERATION_TTL_SECONDS = 24 * 3600


def _generation_key(tenant_id: int, customer_external_id: str) -> str:
    digest = hashlib.sha256(customer_external_id.encode()).hexdigest()[:32]
    return f"recs-gen:{tenant_id}:{digest}"


def customer_generation(tenant_id: int, customer_external_id: str | None) -> int:
    if not customer_external_id:
        return 0
    return int(cache.get(_generation_key(tenant_id, customer_external_id)) or 0)


def bump_customer_generation(tenant_id: int, customer_external_ids: Iterable[str]) -> None:
    """Invalidate the cached answers of these customers (called after their events are stored).

    A fresh timestamp rather than an increment: one round trip, no read-modify-write race, and a key
    that expired cannot come back to an old value."""
    stamp = time.time_ns()
    keys = {_generation_key(tenant_id, c): stamp for c in set(customer_external_ids) if c}
    if keys:
        cache.set_many(keys, GENERATION_TTL_SECONDS)


def answer_key(
    tenant_id: int, kind: str, shape: dict[str, Any], model_version: int | None, *, customer: str | None = None
) -> str:
    """A customer's answers live under the prefix GDPR erasure deletes (recs/recommendation_cache.py);
    their generation is part of the key, so an event makes the old entries unreachable at once."""
    shape_hash = hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:32]
    if customer:
        generation = customer_generation(tenant_id, customer)
        return f"{customer_prefix(tenant_id, customer)}{kind}:{generation}:{shape_hash}:{model_version or 0}"
    return f"{tenant_prefix(tenant_id)}{kind}:{shape_hash}:{model_version or 0}"


def get_answer(key: str) -> dict | None:
    if settings.RECSVC_RECS_CACHE_SECONDS <= 0:
        return None
    return cache.get(key)


def set_answer(key: str, answer: dict) -> None:
    if settings.RECSVC_RECS_CACHE_SECONDS > 0:
        cache.set(key, answer, settings.RECSVC_RECS_CACHE_SECONDS)
