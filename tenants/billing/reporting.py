"""Billable usage to Stripe meters, exactly once per unit, however often the task runs or fails.

For each shop on a paid plan, per meter and month:

1. `usage.snapshot` copies the Redis counters into UsageCounter (monotonic).
2. Under a row lock on that counter, billable = max(0, used - included quota) and the delta above what
   was already handed over (`reported`) becomes one UsageReport row with the next sequence number and the
   deterministic identifier `<prefix>:<tenant>:<meter>:<YYYYMM>:<seq>`. The row and the new `reported`
   commit together, before anything is sent: an outbox.
3. Every pending row is sent (row-locked, so two concurrent runs never send the same row) with that
   identifier, also used as the idempotency key, and marked sent in the same transaction. A crash or a
   lost response after Stripe accepted leaves the row pending; the next run sends the same identifier,
   which Stripe counts once.

A run that processes nothing new sends nothing. The previous month is processed too, so usage counted in
its last minutes is billed (its events are stamped inside that month).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.billing import plans, stripe_api, usage
from tenants.billing.models import UsageCounter, UsageReport
from tenants.billing.periods import bounds, label, period_of, previous_period
from tenants.context import tenant_context
from tenants.models import Tenant

log = logging.getLogger(__name__)


class UsageReportFailed(RuntimeError):
    """Some meter events could not be sent; they stay pending for the next run (the task retries)."""


@dataclass
class ReportSummary:
    tenant_id: int
    usage: dict = field(default_factory=dict)  # {"YYYYMM": {meter: count}}
    queued: int = 0
    sent: int = 0
    failed: int = 0


def identifier(tenant_id: int, meter: str, period: dt.date, seq: int) -> str:
    """Deterministic per shop, meter, month and chunk; at most 100 characters, as Stripe requires."""
    return f"{settings.RECSVC_METER_IDENTIFIER_PREFIX}:{tenant_id}:{meter}:{label(period)}:{seq}"


def _stamp(period: dt.date, now: dt.datetime) -> dt.datetime:
    """The usage time given to Stripe: now, or the last second of a month already over."""
    start, end = bounds(period)
    return min(max(now, start), end - dt.timedelta(seconds=1))


def _queue(tenant: Tenant, period: dt.date, now: dt.datetime) -> int:
    """Write a pending report per meter whose billable usage grew. Returns the number written."""
    plan = plans.get(tenant.plan)
    if not plan.is_paid or not tenant.stripe_customer_id:
        return 0
    written = 0
    for meter in plans.Meter:
        with transaction.atomic():
            counter = (
                UsageCounter.objects.for_tenant(tenant).select_for_update().filter(meter=meter, period=period).first()
            )
            if counter is None:
                continue
            delta = max(0, counter.count - plan.quota(meter)) - counter.reported
            if delta <= 0:
                continue
            counter.report_seq += 1
            counter.reported += delta
            counter.save(update_fields=["report_seq", "reported", "updated_at"])
            UsageReport.objects.create(
                tenant=tenant,
                meter=meter,
                period=period,
                seq=counter.report_seq,
                quantity=delta,
                identifier=identifier(tenant.pk, meter, period, counter.report_seq),
                event_name=settings.RECSVC_STRIPE_METER_EVENTS[meter],
                stripe_customer_id=tenant.stripe_customer_id,
                timestamp=_stamp(period, now),
            )
            written += 1
    return written


def _send_pending(tenant_id: int, now: dt.datetime) -> tuple[int, int]:
    """Send every pending report of the shop. Returns (sent, failed)."""
    pending = UsageReport.objects.for_tenant(tenant_id).filter(status=UsageReport.Status.PENDING)
    sent = failed = 0
    for pk in pending.order_by("period", "meter", "seq").values_list("pk", flat=True):
        try:
            with transaction.atomic():
                row = pending.select_for_update(skip_locked=True).filter(pk=pk).first()
                if row is None:
                    continue  # sent meanwhile, or being sent by a concurrent run
                stripe_api.create_meter_event(
                    event_name=row.event_name,
                    customer=row.stripe_customer_id,
                    value=row.quantity,
                    identifier=row.identifier,
                    timestamp=row.timestamp,
                )
                row.status, row.sent_at, row.last_error = UsageReport.Status.SENT, now, ""
                row.attempts += 1
                row.save(update_fields=["status", "sent_at", "attempts", "last_error"])
                sent += 1
        except stripe.InvalidRequestError as exc:
            # Stripe will refuse it again (unknown customer or meter, timestamp out of range): a person must look.
            log.error("usage report %s refused by Stripe: %s", pk, exc.user_message or exc)
            pending.filter(pk=pk).update(
                status=UsageReport.Status.FAILED, attempts=F("attempts") + 1, last_error=str(exc)[:2000]
            )
            failed += 1
        except stripe.StripeError as exc:
            # Network, rate limit, Stripe outage, or an unknown outcome: the row stays pending for a re-send.
            log.warning("usage report %s not sent (will retry): %s", pk, exc.user_message or exc)
            pending.filter(pk=pk).update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
            failed += 1
    return sent, failed


def report_tenant_usage(tenant_id: int, *, now: dt.datetime | None = None) -> ReportSummary:
    """Snapshot the shop's counters, queue billable deltas and send what is pending.

    Raises UsageReportFailed if some event could not be sent (after recording everything else).
    """
    now = now or timezone.now()
    summary = ReportSummary(tenant_id)
    tenant = Tenant.objects.get(pk=tenant_id)
    current = period_of(now)
    with tenant_context(tenant_id):
        for period in (previous_period(current), current):
            summary.usage[label(period)] = usage.snapshot(tenant_id, period)
            summary.queued += _queue(tenant, period, now)
        if stripe_api.configured():
            summary.sent, summary.failed = _send_pending(tenant_id, now)
        pending = UsageReport.objects.for_tenant(tenant_id).filter(status=UsageReport.Status.PENDING).count()
    if summary.failed and pending:
        raise UsageReportFailed(f"tenant {tenant_id}: {pending} usage report(s) still pending")
    return summary
