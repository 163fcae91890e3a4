"""Admitting an API request in one Redis round trip: the key's shared cache entry, its rate-limit count and
the shop's usage counters, in one pipeline.

The key's immutable identity (id, tenant, secret hash) is known per process (tenants.api_keys), so the
secret is checked before any I/O and the names of the rate-limit window and of the usage hash are known;
everything that can change (revocation, the tenant's plan and activity) comes from the shared cache entry
read in the same round trip, so a revocation still binds on the next request in every process. The same
pipeline carries the usage counts this process recorded since its last admission (usage.record_soon).

The DRF authentication class calls `admit`; the throttle (tenants.ratelimit) and the quota permission
(recs.api.quota) use what it read instead of asking Redis again. Every request authenticated with a key
counts against its rate limit, including one that a permission then refuses. If Redis is unreachable the
key comes from the database and the request is neither rate-limited nor held to a quota (degrade, never
fail). Without Redis (the embedded default) the plain paths run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from core.redis_client import raw_redis
from tenants import api_keys, key_cache, ratelimit
from tenants.billing import counters
from tenants.billing import usage as usage_meter
from tenants.billing.periods import period_of
from tenants.billing.plans import Meter
from tenants.models import ApiKey

_METERS = [m.value for m in Meter]
# Set on the DRF request by the authentication class.
REQUEST_ATTRIBUTE = "_recsvc_admission"


@dataclasses.dataclass
class Admission:
    key: ApiKey
    # The request's number in its rate-limit window; None when not counted here (then the throttle counts).
    rate_count: int | None = None
    retry_after: float = 0.0
    # This month's usage per meter; None when not read here (then the quota reads it).
    usage: dict[str, int] | None = None
    # Redis could not be reached: no rate limit, no quota for this request.
    degraded: bool = False


def of(request) -> Admission | None:
    return getattr(request, REQUEST_ATTRIBUTE, None)


def admit(raw_key: str, *, count_rate: bool, visitor: str | None = None) -> Admission | None:
    """The admission of a request made with `raw_key`, or None when the key is not valid.

    `count_rate`: count the request against the key's rate limit (the view is throttled by key); `visitor`:
    the visitor's address, which a publishable key's limit counts per (tenants.ratelimit.key_bucket)."""
    prefix = api_keys.parse_prefix(raw_key)
    if prefix is None:
        return None
    identity = api_keys.identity_of(prefix)
    if identity is None or not api_keys.secret_matches(identity, raw_key):
        return None  # a forged secret is not counted against the key's budget
    client = raw_redis()
    if client is None:
        key = api_keys.authenticate_api_key(raw_key)
        return Admission(key) if key is not None else None
    now = time.time()
    rate_key, retry_after = ratelimit.window_key(ratelimit.key_bucket(identity.key_id, visitor), now)
    usage_key = counters.key(identity.tenant_id, period_of(dt.datetime.fromtimestamp(now, dt.UTC)))
    pipe = client.pipeline(transaction=False)
    usage_meter.queue_pending(pipe)  # first, so that the usage read below includes them
    waiting = len(pipe)
    pipe.get(key_cache.redis_name(prefix))
    pipe.hmget(usage_key, _METERS)
    if count_rate:
        pipe.incr(rate_key)
        pipe.expire(rate_key, ratelimit.WINDOW_SECONDS + 1, nx=True)
    try:
        entry, usage_values, *counted = pipe.execute()[waiting:]
    except Exception:  # Redis down: serve, do not limit
        ratelimit.log.warning("rate limiter unavailable; request not counted", exc_info=True)
        key = api_keys.authenticate_api_key(raw_key)  # a failed cache read is a miss: the database answers
        return Admission(key, degraded=True) if key is not None else None
    key = key_cache.decode(entry)
    if key is None or key.pk != identity.key_id:
        key = api_keys.load_key(prefix)
    if not api_keys.usable(key, raw_key):
        return None
    api_keys.touch(key)
    usage = {m: int(v or 0) for m, v in zip(_METERS, usage_values, strict=True)}
    return Admission(key, rate_count=counted[0] if count_rate else None, retry_after=retry_after, usage=usage)
