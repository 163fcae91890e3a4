"""Where cached recommendations live in the cache, so that erasure can find them.

Key pattern (documented contract for the serving layer): every cached answer for one customer is stored
under `customer_prefix(tenant_id, customer_id)` followed by the endpoint and the request's shape, e.g.
`recs:{42}:c:<sha256 of the customer id, 32 hex>:<endpoint>:<shape>`. The braces are the tenant's Redis
Cluster hash tag: every key of one tenant's answers lives in one slot. The customer id is hashed so
that no id, however odd its characters, can widen a delete pattern or leak into key listings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache


def tenant_prefix(tenant_id: int) -> str:
    return f"recs:{{{int(tenant_id)}}}:"


def customer_prefix(tenant_id: int, customer_id: str) -> str:
    digest = hashlib.sha256(customer_id.encode()).hexdigest()[:32]
    return f"{tenant_prefix(tenant_id)}c:{digest}:"


def _delete_pattern(pattern: str) -> int:
    """Delete the keys matching `pattern` (a prefix and "*")."""
    delete_pattern = getattr(cache, "delete_pattern", None)  # django-redis
    if delete_pattern is not None:
        return int(delete_pattern(pattern) or 0)
    backend = caches["default"]
    if isinstance(backend, LocMemCache):
        return _delete_local_prefix(backend, pattern.removesuffix("*"))
    return 0


def _delete_local_prefix(backend: LocMemCache, prefix: str) -> int:
    """Django's local-memory cache has no pattern delete, so its keys are matched by prefix under its own
    lock (its `_cache`, `_lock` and `_delete`). The embedded default serves from one process
    (config/gunicorn.py), so that process's cache is the whole cache."""
    made = backend.make_key(prefix)
    with backend._lock:
        doomed = [key for key in backend._cache if key.startswith(made)]
        for key in doomed:
            backend._delete(key)
    return len(doomed)


def forget_customers(tenant_id: int, customer_ids: Iterable[str]) -> int:
    """Delete every cached recommendation of these customers; returns how many keys went."""
    return sum(_delete_pattern(customer_prefix(tenant_id, customer_id) + "*") for customer_id in customer_ids)


def forget_tenant(tenant_id: int) -> int:
    return _delete_pattern(tenant_prefix(tenant_id) + "*")
