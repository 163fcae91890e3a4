"""core.redis_client: one client for every caller, following the CACHES setting."""

from __future__ import annotations

from core.redis_client import raw_redis


def test_the_client_follows_the_caches_setting(settings):
    assert raw_redis() is raw_redis()  # one client for every caller (django-redis keeps one per cache too)
    down = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert raw_redis() is None
    settings.CACHES = {"default": {**down, "BACKEND": "django_redis.cache.RedisCache"}}
    assert raw_redis().connection_pool.connection_kwargs["port"] == 1
