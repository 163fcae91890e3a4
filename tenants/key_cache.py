"""The shared cache entry of an API key (its row and its tenant's), stored as JSON, never as a pickle.

Django's Redis cache pickles what it stores and unpickles what it reads, so anyone able to write to Redis
could run code in every web process through the entry each request reads. This entry is written and read
through the raw Redis client as JSON instead: a value that is not this JSON is a miss. Without Redis (the
embedded default) it lives in the local-memory cache as the same JSON string.

Only the concrete fields of the two models are kept: strings, numbers, booleans, lists and datetimes
(ISO 8601). A field of another type fails `tests/tenants/test_key_cache.py` rather than being cached
wrongly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.core.cache import cache
from django.db import models

from core.redis_client import raw_redis
from tenants.models import ApiKey, Tenant

log = logging.getLogger(__name__)
CACHE_SECONDS = 60
_FORMAT = 1


def cache_key(prefix: str) -> str:
    """The entry's name in Django's cache API (revocation deletes it through `cache.delete`)."""
    return f"apikey:{prefix}"


def _layout(model: type[models.Model]) -> list[tuple[str, bool]]:
    return [(f.attname, f.get_internal_type() == "DateTimeField") for f in model._meta.concrete_fields]


_KEY_FIELDS = _layout(ApiKey)
_TENANT_FIELDS = _layout(Tenant)


def _dump(obj: models.Model, layout: list[tuple[str, bool]]) -> list[Any]:
    values = []
    for attname, is_datetime in layout:
        value = getattr(obj, attname)
        values.append(value.isoformat() if is_datetime and value is not None else value)
    return values


def _load(model: type[models.Model], layout: list[tuple[str, bool]], values: list[Any]) -> models.Model:
    if len(values) != len(layout):
        raise ValueError("the entry's fields are not the model's")
    row = [
        dt.datetime.fromisoformat(value) if is_datetime and value is not None else value
        for (_, is_datetime), value in zip(layout, values, strict=True)
    ]
    return model.from_db("default", [attname for attname, _ in layout], row)


def encode(key: ApiKey) -> bytes:
    """The entry of `key`, whose tenant must be loaded (select_related)."""
    return json.dumps(
        {"v": _FORMAT, "key": _dump(key, _KEY_FIELDS), "tenant": _dump(key.tenant, _TENANT_FIELDS)},
        separators=(",", ":"),
    ).encode()


def decode(raw: bytes | str | None) -> ApiKey | None:
    """The key (with its tenant) of an entry; None for a missing or unreadable one (a miss)."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        if not isinstance(entry, dict) or entry.get("v") != _FORMAT:
            return None
        key = _load(ApiKey, _KEY_FIELDS, entry["key"])
        tenant = _load(Tenant, _TENANT_FIELDS, entry["tenant"])
    except (ValueError, TypeError, KeyError):
        return None
    if key.tenant_id != tenant.pk:
        return None
    key.tenant = tenant
    return key


def redis_name(prefix: str) -> str:
    """The entry's name in Redis (for pipelines that read it with other commands)."""
    return cache.make_key(cache_key(prefix))


def store(key: ApiKey) -> None:
    """Put `key`'s entry in the shared cache for CACHE_SECONDS (dropped when Redis is unreachable)."""
    client = raw_redis()
    if client is None:
        cache.set(cache_key(key.prefix), encode(key).decode(), CACHE_SECONDS)
        return
    try:
        client.set(redis_name(key.prefix), encode(key), ex=CACHE_SECONDS)
    except Exception:  # Redis down: the next request reads the database again (ADR 0010)
        log.warning("could not cache API key %s", key.prefix, exc_info=True)


def read(prefix: str) -> ApiKey | None:
    """The key's cached entry, or None (absent, unreadable, or Redis unreachable)."""
    client = raw_redis()
    if client is None:
        return decode(cache.get(cache_key(prefix)))
    try:
        return decode(client.get(redis_name(prefix)))
    except Exception:
        log.warning("could not read the cached API key %s", prefix, exc_info=True)
        return None
