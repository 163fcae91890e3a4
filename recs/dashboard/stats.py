"""The overview page's numbers: a handful of aggregate queries over one tenant's rows.

Callers run these inside `tenant_context(tenant_id)` (row-level security); the querysets are scoped
with `for_tenant` as well.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from recs.models import Customer, Event, ImportJob, Product

ACTIVE_IMPORT_STATUSES = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)


@dataclass(frozen=True)
class Overview:
    customers: int
    placeholder_customers: int
    products: int  # live: not deleted
    products_in_stock: int
    events_total: int
    events_recent: int  # inside the `per_day` window
    imports_in_progress: int
    per_day: list[tuple[dt.date, int]]  # oldest first, one entry per day, zero-filled
    mix: list[tuple[str, int]]  # events per type inside the window, most frequent first


def day_window(days: int, today: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[midnight `days - 1` days before today, midnight tomorrow) in UTC: today plus the days before it."""
    start = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), tzinfo=dt.UTC)
    return start, dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def events_per_day(tenant_id: int, *, days: int = 30, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    today = today or timezone.now().astimezone(dt.UTC).date()
    start, end = day_window(days, today)
    rows = (
        Event.objects.for_tenant(tenant_id)
        .filter(ts__gte=start, ts__lt=end)
        .annotate(day=TruncDate("ts", tzinfo=dt.UTC))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["day"]: row["n"] for row in rows}
    first = start.date()
    return [(first + dt.timedelta(days=i), counts.get(first + dt.timedelta(days=i), 0)) for i in range(days)]


def overview(tenant_id: int, *, days: int = 30, today: dt.date | None = None) -> Overview:
    today = today or timezone.now().astimezone(dt.UTC).date()
    start, end = day_window(days, today)
    customers = Customer.objects.for_tenant(tenant_id).aggregate(
        total=Count("id"), placeholders=Count("id", filter=Q(is_placeholder=True))
    )
    in_stock = Q(available=True) & (Q(stock__isnull=True) | Q(stock__gt=0))
    products = (
        Product.objects.for_tenant(tenant_id)
        .filter(deleted=False)
        .aggregate(total=Count("id"), in_stock=Count("id", filter=in_stock))
    )
    events = Event.objects.for_tenant(tenant_id).aggregate(
        total=Count("id"), recent=Count("id", filter=Q(ts__gte=start, ts__lt=end))
    )
    mix = (
        Event.objects.for_tenant(tenant_id)
        .filter(ts__gte=start, ts__lt=end)
        .values("event_type")
        .annotate(n=Count("id"))
        .order_by("-n", "event_type")
    )
    imports = ImportJob.objects.for_tenant(tenant_id).filter(status__in=ACTIVE_IMPORT_STATUSES).count()
    return Overview(
        customers=customers["total"],
        placeholder_customers=customers["placeholders"],
        products=products["total"],
        products_in_stock=products["in_stock"],
        events_total=events["total"],
        events_recent=events["recent"],
        imports_in_progress=imports,
        per_day=events_per_day(tenant_id, days=days, today=today),
        mix=[(row["event_type"], row["n"]) for row in mix],
    )
