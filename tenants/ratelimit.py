"""Per-API-key rate limit: a fixed one-minute window counted in Redis (one INCR per request).

DRF's SimpleRateThrottle keeps a list of timestamps per client and rewrites it on every request, which
races under concurrency; an atomic counter does not. If Redis is unreachable the limit is not enforced
(degrade, never fail the request).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from core.redis_client import raw_redis
from tenants.client_ip import client_ip
from tenants.models import ApiKey

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60


def key_bucket(key_id: int, visitor: str | None = None) -> str:
    """What a key's requests count against: the key, or for a publishable key (a storefront's, shared by all
    its visitors) the key and the visitor's address, so that one visitor cannot use up everyone's minute."""
    return f"key:{key_id}" if visitor is None else f"key:{key_id}:visitor:{visitor}"


def window_key(bucket: str, now: float, window: int = WINDOW_SECONDS) -> tuple[str, float]:
    """The Redis key counting `bucket` in the window that `now` falls in, and the seconds until it ends."""
    window_start = int(now // window) * window
    return f"rl:{bucket}:{window_start}", window_start + window - now


def hit(bucket: str, limit: int, window: int = WINDOW_SECONDS) -> tuple[bool, float]:
    """Count one request in `bucket`; return (allowed, seconds until the window resets)."""
    key, retry_after = window_key(bucket, time.time(), window)
    client = raw_redis()
    try:
        if client is not None:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, window + 1, nx=True)
            count = pipe.execute()[0]
        else:
            cache.add(key, 0, window + 1)
            count = cache.incr(key)
    except Exception:  # Redis down: serve, do not limit
        log.warning("rate limiter unavailable; request not counted", exc_info=True)
        return True, 0.0
    return count <= limit, retry_after


def within_limit(admission) -> bool | None:
    """Whether an admitted request (tenants.admission.Admission) is within its key's rate limit; None
    when its admission did not count it (the throttle then counts)."""
    if admission is None:
        return None
    if admission.degraded:
        return True  # Redis was unreachable when the request was admitted
    if admission.rate_count is None:
        return None
    return admission.rate_count <= settings.RECSVC_RATE_LIMIT_PER_MINUTE


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        admission = getattr(request, "_recsvc_admission", None)  # tenants.admission.REQUEST_ATTRIBUTE
        counted = within_limit(admission)
        if counted is not None:
            self._wait = admission.retry_after
            return counted
        visitor = client_ip(request) if key.is_publishable else None
        allowed, self._wait = hit(key_bucket(key.pk, visitor), settings.RECSVC_RATE_LIMIT_PER_MINUTE)
        return allowed

    def wait(self) -> float:
        return max(1.0, getattr(self, "_wait", 1.0))
