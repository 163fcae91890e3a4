"""Usage metering: count on the hot path, read for quotas and the dashboard, snapshot into PostgreSQL.

    from tenants.billing import usage
    usage.record(tenant_id, usage.EVENTS, result.stored)      # after storing events
    usage.record(tenant_id, usage.RECOMMENDATIONS)           # once per recommendation request

`record` costs one pipelined Redis round trip and never raises. Count what was served or stored (not
what was refused), after the work succeeded.

`record_soon` costs no round trip: the count waits in the process and rides on its next API admission
(tenants.admission sends `take_pending` in its script), which a recommendation request, answered
from the cache in a single round trip, could not otherwise spare. A count waits at most until the
process admits its next request (or exits); if Redis is down then, it is lost (under-billing, never
over-billing, as with the counters themselves).
"""

from __future__ import annotations

import atexit
import datetime as dt
import threading
from collections import Counter

from django.db import transaction
from django.utils import timezone

from tenants.billing import counters
from tenants.billing.models import UsageCounter
from tenants.billing.periods import period_of
from tenants.billing.plans import Meter
from tenants.redis_client import raw_redis

EVENTS = Meter.EVENTS
RECOMMENDATIONS = Meter.RECOMMENDATIONS
METERS = [m.value for m in Meter]


def record(tenant_id: int, meter: str, n: int = 1, *, at: dt.datetime | None = None) -> None:
    """Count `n` units of `meter` for the shop in the current month (n <= 0 is a no-op)."""
    if n <= 0:
        return
    counters.incr(tenant_id, period_of(at or timezone.now()), Meter(meter).value, int(n))


_pending: Counter[tuple[int, dt.date, str]] = Counter()
_pending_lock = threading.Lock()


def record_soon(tenant_id: int, meter: str, n: int = 1) -> None:
    """Count like `record`, sent with this process's next admission round trip (see the docstring)."""
    if n <= 0:
        return
    if raw_redis() is None:
        record(tenant_id, meter, n)
        return
    with _pending_lock:
        _pending[(tenant_id, period_of(timezone.now()), Meter(meter).value)] += int(n)


def take_pending() -> list[tuple[tuple[int, dt.date, str], int]]:
    """The waiting counts ((tenant, period, meter), n), handed over to be sent (tenants.admission sends
    them in its script)."""
    with _pending_lock:
        waiting = list(_pending.items())
        _pending.clear()
    return waiting


def flush_pending() -> None:
    """Send the waiting counts in a round trip of their own."""
    for (tenant_id, period, meter), n in take_pending():
        counters.incr(tenant_id, period, meter, n)


atexit.register(flush_pending)


def live(tenant_id: int, meter: str, period: dt.date | None = None) -> int | None:
    """This month's count from the counters, for the hot path; None when they cannot be reached."""
    counts = counters.read(tenant_id, period or period_of(timezone.now()), [Meter(meter).value])
    return None if counts is None else counts[Meter(meter).value]


def _stored(tenant_id: int, period: dt.date) -> dict[str, int]:
    rows = UsageCounter.objects.for_tenant(tenant_id).filter(period=period).values_list("meter", "count")
    return {**dict.fromkeys(METERS, 0), **dict(rows)}


def totals(tenant_id: int, period: dt.date | None = None) -> dict[str, int]:
    """Usage per meter for the dashboard: the live counters, or the last snapshot if it is higher
    (counters lost or unreachable). Call inside the shop's tenant context."""
    period = period or period_of(timezone.now())
    stored = _stored(tenant_id, period)
    counts = counters.read(tenant_id, period, METERS) or {}
    return {m: max(stored[m], counts.get(m, 0)) for m in METERS}


def snapshot(tenant_id: int, period: dt.date) -> dict[str, int]:
    """Copy the live counters into UsageCounter rows (never lowering them) and return the totals.

    Call inside the shop's tenant context. Raises if the counters cannot be reached.
    """
    stored = _stored(tenant_id, period)
    counts = counters.seed_and_read(tenant_id, period, stored)
    result = {}
    for meter in METERS:
        value = max(stored[meter], counts.get(meter, 0))
        result[meter] = value
        if value == stored[meter] and value == 0:
            continue
        with transaction.atomic():
            row, _ = UsageCounter.objects.for_tenant(tenant_id).select_for_update().get_or_create(
                tenant_id=tenant_id, meter=meter, period=period
            )
            if value > row.count:
                row.count = value
                row.save(update_fields=["count", "updated_at"])
    return result
