"""Admitting an API request in one Redis round trip: the key's shared cache entry, its rate-limit count
and the shop's usage counters, pipelined.

Before, a request paid one round trip each for the key cache, the rate limit and the quota's usage read.
The key's immutable identity (id, tenant, secret hash) is known per process (tenants.api_keys), so the
secret is checked before any I/O and the keys of the rate-limit window and of the usage hash are known;
everything that can change (revocation, the tenant's plan and activity) comes from the shared cache entry
read in the same round trip, so a revocation still binds on the next request in every process.

The DRF authentication class calls `admit`; the throttle (tenants.ratelimit) and the quota permission
(recs.api.quota) use what it read instead of asking Redis again. Every request authenticated with a key
counts against its rate limit, including one that a permission then refuses. If Redis is unreachable the
key comes from the database and the request is neither rate-limited nor held to a quota (degrade, never
fail), as before. Without Redis (the embedded default) the plain paths run.

A view may queue its own reads on the same round trip (`prefetch`, e.g. serving's cached-answer lookup,
so that a cached recommendation costs one round trip in all). They are queued for the key's tenant
before the key is checked: their replies are only handed to the view when the key is then admitted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from redis.exceptions import NoScriptError

from tenants import api_keys, ratelimit
from tenants.billing import counters
from tenants.billing import usage as usage_meter
from tenants.billing.periods import period_of
from tenants.billing.plans import Meter
from tenants.models import ApiKey
from tenants.redis_client import RoundTrip, raw_redis

_METERS = [m.value for m in Meter]
# Set on the DRF request by the authentication class.
REQUEST_ATTRIBUTE = "_recsvc_admission"

# An admission is one script rather than a pipeline of its six to eight commands: the client packs and
# parses one command instead of each of them (about a tenth of a cached answer's CPU). In order: the
# counts waiting in this process (usage.record_soon), the rate-limit count, then what is read.
# KEYS: the key's cache entry, the shop's usage hash, the rate-limit window, then one usage hash per
# waiting count. ARGV: count the rate (1/0), the window's and the usage hash's TTLs, the number of meters,
# the meters, then a meter and a count per waiting count. Returns {entry, usage per meter, rate count}.
_ADMIT_SCRIPT = """
local meters = tonumber(ARGV[4])
local at = 5 + meters
for i = 4, #KEYS do
  redis.call('HINCRBY', KEYS[i], ARGV[at], ARGV[at + 1])
  redis.call('EXPIRE', KEYS[i], ARGV[3], 'NX')
  at = at + 2
end
local count = false
if ARGV[1] == '1' then
  count = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2], 'NX')
end
return {redis.call('GET', KEYS[1]), redis.call('HMGET', KEYS[2], unpack(ARGV, 5, 4 + meters)), count}
"""
_ADMIT_SHA = hashlib.sha1(_ADMIT_SCRIPT.encode()).hexdigest()


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
    # The replies of the view's `prefetch` commands (an error reply is an exception instance).
    prefetched: list[Any] | None = None


# Queues commands on the admission's round trip for the key's tenant (tenant id, RoundTrip).
Prefetch = Callable[[int, Any], None]


def of(request) -> Admission | None:
    return getattr(request, REQUEST_ATTRIBUTE, None)


def admit(raw_key: str, *, count_rate: bool, prefetch: Prefetch | None = None) -> Admission | None:
    """The admission of a request made with `raw_key`, or None when the key is not valid.

    `count_rate`: count the request against the key's rate limit (the view is throttled by key).
    `prefetch`: queues the view's own reads on the same round trip (see the module's docstring)."""
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
    rate_key, retry_after = ratelimit.window_key(f"key:{identity.key_id}", now)
    usage_key = counters.key(identity.tenant_id, period_of(dt.datetime.fromtimestamp(now, dt.UTC)))
    # Counts this process recorded since its last admission (usage.record_soon) go first, so that the
    # usage read includes them.
    pending = usage_meter.take_pending()
    keys = [cache.make_key(api_keys.cache_key(prefix)), usage_key, rate_key,
            *(counters.key(tenant_id, period) for (tenant_id, period, _), _ in pending)]
    args = [int(count_rate), ratelimit.WINDOW_SECONDS + 1, counters.TTL_SECONDS, len(_METERS), *_METERS,
            *(value for (_, _, meter), n in pending for value in (meter, n))]
    try:
        trip = RoundTrip().evalsha(_ADMIT_SHA, len(keys), *keys, *args)
        if prefetch is not None:
            prefetch(identity.tenant_id, trip)
        # A failing prefetch command must not fail the admission: its error stays in its reply.
        own, *replies = trip.execute(client)
        prefetched = replies if prefetch is not None else None
        if isinstance(own, NoScriptError):  # a Redis that does not know the script (restarted, flushed)
            own = client.eval(_ADMIT_SCRIPT, len(keys), *keys, *args)
        if isinstance(own, Exception):
            raise own
        entry, usage_values, rate_count = own
    except Exception:  # Redis down: serve, do not limit
        ratelimit.log.warning("rate limiter unavailable; request not counted", exc_info=True)
        key = api_keys.authenticate_api_key(raw_key)  # through the cache API, which falls back to the database
        return Admission(key, degraded=True) if key is not None else None
    key = _decode_key(entry)
    if key is None or key.pk != identity.key_id:
        key = api_keys.load_key(prefix)
    if not api_keys.usable(key, raw_key):
        return None
    api_keys.touch(key)
    usage = {m: int(v or 0) for m, v in zip(_METERS, usage_values, strict=True)}
    return Admission(key, rate_count=rate_count if count_rate else None, retry_after=retry_after, usage=usage,
                     prefetched=prefetched)


# The last decoded cache entries by their bytes: unpickling a model instance with its tenant was a tenth of
# a cached answer's CPU. Equal bytes are an equal key, so a changed entry (revoked, touched, a new plan)
# is decoded afresh. Bounded: cleared when full.
_decoded: dict[bytes, ApiKey] = {}
_DECODED_MAX = 1024


def _decode_key(raw) -> ApiKey | None:
    if raw is None:
        return None
    hit = _decoded.get(raw)
    if hit is not None:
        return hit
    try:
        key = cache.client.decode(raw)
    except Exception:  # an unreadable entry is a miss
        return None
    if not isinstance(key, ApiKey):
        return None
    if len(_decoded) >= _DECODED_MAX:
        _decoded.clear()
    _decoded[raw] = key
    return key
