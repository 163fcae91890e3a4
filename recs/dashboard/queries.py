"""Tenant-scoped queries behind the dashboard's data pages (run inside `tenant_context`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, QuerySet

from recs.models import BUILTIN_EVENT_WEIGHTS, Customer, Event, EventType, ImportJob, Product

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class StockFilter:
    ANY = ""
    IN_STOCK = "in"
    OUT_OF_STOCK = "out"
    CHOICES = ((ANY, "Any stock"), (IN_STOCK, "In stock"), (OUT_OF_STOCK, "Out of stock"))


def products(tenant_id: int, *, q: str = "", stock: str = StockFilter.ANY) -> QuerySet[Product]:
    """Live products, newest first; `q` matches the shop's id exactly or a part of the title."""
    queryset = Product.objects.for_tenant(tenant_id).filter(deleted=False)
    if q:
        queryset = queryset.filter(Q(external_id=q) | Q(title__icontains=q))
    in_stock = Q(available=True) & (Q(stock__isnull=True) | Q(stock__gt=0))
    if stock == StockFilter.IN_STOCK:
        queryset = queryset.filter(in_stock)
    elif stock == StockFilter.OUT_OF_STOCK:
        queryset = queryset.exclude(in_stock)
    return queryset.order_by("-id")


def customers(tenant_id: int, *, q: str = "") -> QuerySet[Customer]:
    queryset = Customer.objects.for_tenant(tenant_id)
    if q:
        queryset = queryset.filter(external_id__icontains=q)
    return queryset.order_by("-id")


@dataclass(frozen=True)
class Activity:
    """What the dashboard says of a customer's activity. `first_seen` is the earlier of the first event and
    the row's creation: a customer imported today with events of 2016 was first seen in 2016, so first
    seen is never after last seen."""

    events: int
    first_seen: dt.datetime
    last_seen: dt.datetime | None


def customer_activity(tenant_id: int, customers: Iterable[Customer]) -> dict[int, Activity]:
    """Event count, first and latest event per customer, for one page of customers (one grouped query)."""
    customers = list(customers)
    rows = (
        Event.objects.for_tenant(tenant_id)
        .filter(customer_id__in=[c.pk for c in customers])
        .values("customer_id")
        .annotate(n=Count("id"), first=Min("ts"), last=Max("ts"))
        .order_by()
    )
    by_customer = {row["customer_id"]: row for row in rows}
    activity = {}
    for customer in customers:
        row = by_customer.get(customer.pk)
        if row is None:
            activity[customer.pk] = Activity(0, customer.created_at, None)
        else:
            activity[customer.pk] = Activity(row["n"], min(row["first"], customer.created_at), row["last"])
    return activity


def customer(tenant_id: int, pk: int) -> Customer | None:
    return Customer.objects.for_tenant(tenant_id).filter(pk=pk).first()


def customer_by_external_id(tenant_id: int, external_id: str) -> Customer | None:
    return Customer.objects.for_tenant(tenant_id).filter(external_id=external_id).first()


def product(tenant_id: int, pk: int) -> Product | None:
    return Product.objects.for_tenant(tenant_id).filter(pk=pk).first()


def product_pks(tenant_id: int, external_ids: Iterable[str]) -> dict[str, int]:
    """The row id of each shop product id that exists, to link the products of an answer to their page."""
    ids = list(dict.fromkeys(external_ids))
    if not ids:
        return {}
    return dict(Product.objects.for_tenant(tenant_id).filter(external_id__in=ids).values_list("external_id", "pk"))


def event_type_names(tenant_id: int) -> list[str]:
    """Built-in types and the tenant's custom ones (no DISTINCT scan over the events table)."""
    custom = EventType.objects.for_tenant(tenant_id).values_list("name", flat=True)
    return sorted(set(BUILTIN_EVENT_WEIGHTS) | set(custom))


@dataclass(frozen=True)
class Cursor:
    """Keyset position in (ts, id) descending order; offsets would crawl on a large events table."""

    ts: dt.datetime
    id: int

    def encode(self) -> str:
        delta = self.ts - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}.{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor | None:
        """None for anything malformed (the value comes from the query string)."""
        micros, _, ident = raw.partition(".")
        if not (micros.lstrip("-").isdigit() and ident.isdigit()) or len(raw) > 40:
            return None
        try:
            return cls(_EPOCH + dt.timedelta(microseconds=int(micros)), int(ident))
        except OverflowError:
            return None


def recent_events(
    tenant_id: int, *, event_type: str = "", before: Cursor | None = None, limit: int = 50,
    customer_pk: int | None = None,
) -> tuple[list[Event], Cursor | None]:
    """A page of events (of one customer, with `customer_pk`), newest first, and the cursor of the next
    (older) page if there is one."""
    queryset = Event.objects.for_tenant(tenant_id).select_related("customer", "product")
    if customer_pk is not None:
        queryset = queryset.filter(customer_id=customer_pk)
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    if before is not None:
        queryset = queryset.filter(Q(ts__lt=before.ts) | Q(ts=before.ts, id__lt=before.id))
    page = list(queryset.order_by("-ts", "-id")[: limit + 1])
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    return page, Cursor(page[-1].ts, page[-1].pk)


def import_jobs(tenant_id: int) -> QuerySet[ImportJob]:
    return ImportJob.objects.for_tenant(tenant_id).order_by("-created_at", "-id")
