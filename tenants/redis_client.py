"""The raw Redis client behind Django's cache, for the hot paths' scripts and pipelines."""

from __future__ import annotations

from typing import Any


def raw_redis() -> Any | None:
    """The `default` cache's Redis client, or None under the embedded default's local-memory cache."""
    try:
        from django_redis import get_redis_connection

        return get_redis_connection("default")
    except (ImportError, NotImplementedError):
        return None
