"""The raw Redis client behind Django's cache, for what the cache API cannot say (pipelines, scripts,
streams)."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

_NOT_LOOKED_UP = object()
_client: Any = _NOT_LOOKED_UP


def raw_redis() -> Any | None:
    """The `default` cache's Redis client, or None under the embedded default's local-memory cache.

    Looked up once per process; one client serves every thread (its connection pool is thread-safe, and
    django-redis shares that pool between the threads' cache objects anyway)."""
    global _client
    if _client is _NOT_LOOKED_UP:
        try:
            from django_redis import get_redis_connection

            _client = get_redis_connection("default")
        except (ImportError, NotImplementedError):
            _client = None
    return _client


@receiver(setting_changed)
def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    """Tests swap CACHES (override_settings); a running service never does."""
    global _client
    if setting == "CACHES":
        _client = _NOT_LOOKED_UP
