"""Bulk writes for ingestion. PostgreSQL: COPY into a session temp table, then one INSERT ... ON
CONFLICT DO NOTHING (COPY alone cannot skip duplicates, and row-level security forbids COPY into the
guarded table directly). Other databases (the embedded SQLite demo): the ORM's bulk_create.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from recs.models import Customer, Event, Product

EVENT_COLUMNS = (
    "event_type", "customer_id", "product_id", "ts", "value", "quantity", "price", "session_id",
    "recommendation_id", "event_id",
)
_CHUNK = 900  # stays under SQLite's bound-parameter limit


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _ids_by_external_id(model, tenant_id: int, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(ids):
        found.update(model.objects.for_tenant(tenant_id).filter(external_id__in=chunk).values_list("external_id", "id"))
    return found


def product_ids(tenant_id: int, external_ids: set[str]) -> dict[str, int]:
    if not external_ids:
        return {}
    ids = list(external_ids)
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id, id FROM recs_product WHERE tenant_id = %s AND external_id = ANY(%s)",
                [tenant_id, ids],
            )
            return dict(cursor.fetchall())
    return _ids_by_external_id(Product, tenant_id, ids)


def ensure_customers(tenant_id: int, external_ids: set[str]) -> dict[str, int]:
    """Ids of the named customers, creating placeholders for the unknown ones."""
    if not external_ids:
        return {}
    ids = list(external_ids)
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id, id FROM recs_customer WHERE tenant_id = %s AND external_id = ANY(%s)",
                [tenant_id, ids],
            )
            found = dict(cursor.fetchall())
            missing = [x for x in ids if x not in found]
            if missing:
                cursor.execute(
                    "INSERT INTO recs_customer (tenant_id, external_id, attributes, is_placeholder, created_at,"
                    " updated_at) SELECT %s, x, '{}'::jsonb, true, now(), now() FROM unnest(%s::text[]) AS x"
                    " ON CONFLICT (tenant_id, external_id) DO NOTHING",
                    [tenant_id, missing],
                )
                cursor.execute(
                    "SELECT external_id, id FROM recs_customer WHERE tenant_id = %s AND external_id = ANY(%s)",
                    [tenant_id, missing],
                )
                found.update(cursor.fetchall())
            return found
    found = _ids_by_external_id(Customer, tenant_id, ids)
    missing = [x for x in ids if x not in found]
    if missing:
        Customer.objects.bulk_create(
            [Customer(tenant_id=tenant_id, external_id=x, is_placeholder=True) for x in missing],
            ignore_conflicts=True,
        )
        found.update(_ids_by_external_id(Customer, tenant_id, missing))
    return found


_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS event_staging ("
    " event_type varchar(32), customer_id bigint, product_id bigint, ts timestamptz, value double precision,"
    " quantity integer, price numeric(12,2), session_id varchar(128), recommendation_id uuid,"
    " event_id varchar(128)) ON COMMIT DELETE ROWS"
)
_COLS = ", ".join(EVENT_COLUMNS)


def insert_events(tenant_id: int, records: list[tuple]) -> int:
    """Insert event rows (EVENT_COLUMNS order) inside the caller's transaction; return how many were new."""
    if not records:
        return 0
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(_STAGING_DDL)
            with cursor.copy(f"COPY event_staging ({_COLS}) FROM STDIN") as copy:
                for record in records:
                    copy.write_row(record)
            cursor.execute(
                f"INSERT INTO recs_event (tenant_id, {_COLS}, received_at)"
                f" SELECT %s, {_COLS}, now() FROM event_staging"
                " ON CONFLICT (tenant_id, event_id) DO NOTHING",
                [tenant_id],
            )
            inserted = cursor.rowcount
            cursor.execute("TRUNCATE event_staging")
            return inserted
    now = timezone.now()
    objs = [Event(tenant_id=tenant_id, received_at=now, **dict(zip(EVENT_COLUMNS, r, strict=True))) for r in records]
    with_ids = [o for o in objs if o.event_id is not None]
    existing: set[str] = set()
    for chunk in _chunks([o.event_id for o in with_ids]):
        stored = Event.objects.for_tenant(tenant_id).filter(event_id__in=chunk)
        existing.update(stored.values_list("event_id", flat=True))
    fresh = [o for o in objs if o.event_id is None or o.event_id not in existing]
    Event.objects.bulk_create(fresh, batch_size=500)
    return len(fresh)
