"""Usage metering: count on the hot path, read for quotas and the dashboard, snapshot into PostgreSQL.

    from tenants.billing import usage
    usage.record(tenant_id, usage.EVENTS, result.stored)      # after storing events
    usage.record(tenant_id, usage.RECOMMENDATIONS)           # once per recommendation request

`record` costs one pipelined Redis round trip and never raises. Count what was served or stored (not
what was refused), after the work succeeded.

`record_soon` costs no round trip of its own: the count waits in the process and is sent on the pipeline
of the process's next API admission (tenants.admission), or at exit. A count waits at most until then; if
Redis cannot be reached at that moment it is lost, which under-bills and never over-bills, as the
counters themselves do.
"""

from __future__ import annotations

import atexit
import datetime as dt
import threading
from collections import Counter
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.redis_client import raw_redis
from tenants.billing import counters
from tenants.billing.models import UsageCounter
from tenants.billing.periods import period_of
from tenants.billing.plans import Meter

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
    """Count like `record`, sent with this process's next admission (see the module's docstring)."""
    if n <= 0:
        return
    if raw_redis() is None:
        record(tenant_id, meter, n)
        return
    with _pending_lock:
        _pending[(tenant_id, period_of(timezone.now()), Meter(meter).value)] += int(n)


def queue_pending(pipe: Any) -> None:
    """Hand the waiting counts over to a Redis pipeline about to be executed."""
    with _pending_lock:
        waiting = list(_pending.items())
        _pending.clear()
    for (tenant_id, period, meter), n in waiting:
        counters.queue_incr(pipe, tenant_id, period, meter, n)


def flush_pending() -> None:
    """Send the waiting counts in a round trip of their own."""
    client = raw_redis()
    if client is None:
        return
    pipe = client.pipeline(transaction=False)
    queue_pending(pipe)
    try:
        pipe.execute()
    except Exception:
        counters.log.warning("usage counter unavailable; waiting counts lost", exc_info=True)


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
