"""Bulk writes for ingestion. PostgreSQL: binary COPY into a session temp table, then one INSERT ...
ON CONFLICT DO NOTHING (COPY alone cannot skip duplicates, and row-level security forbids COPY into the
guarded table directly); a handful of rows (a single event) go in one INSERT ... VALUES instead. Ids
are resolved in one query per batch. Other databases (the embedded SQLite demo): the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from django.db import connection
from django.utils import timezone

from core.postgres import server_bound_cursor
from recs.models import Customer, Event, Product

EVENT_COLUMNS = (
    "event_type", "customer_id", "product_id", "ts", "value", "quantity", "price", "session_id",
    "recommendation_id", "event_id",
)
_CHUNK = 900  # stays under SQLite's bound-parameter limit


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _ids_by_external_id(model, tenant_id: int, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(ids):
        found.update(model.objects.for_tenant(tenant_id).filter(external_id__in=chunk).values_list("external_id", "id"))
    return found


def _aligned_ids(table: str) -> str:
    return (f"(SELECT json_agg(t.id ORDER BY x.n)::text FROM json_array_elements_text(%s::json) WITH ORDINALITY"
            f" AS x(external_id, n) LEFT JOIN {table} t ON t.tenant_id = %s AND t.external_id = x.external_id)")


_RESOLVE_SQL = f"SELECT {_aligned_ids(Product._meta.db_table)}, {_aligned_ids(Customer._meta.db_table)}"


def _found(asked: list[str], pks_json: str | None) -> dict[str, int]:
    if not asked:
        return {}
    return {ext: pk for ext, pk in zip(asked, msgspec.json.decode(pks_json), strict=True) if pk is not None}


def resolve_ids(tenant_id: int, product_ext: set[str], customer_ext: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Database ids of the named products and (existing) customers, in one round trip."""
    if is_postgres():
        if not product_ext and not customer_ext:
            return {}, {}
        # The id lists travel as JSON arrays, and the ids come back as JSON arrays aligned with them (NULL
        # for an unknown id): encoding and decoding JSON is one C call each, where psycopg dumps a list
        # as an array literal string by string in Python and builds a row object per found id.
        products_asked, customers_asked = list(product_ext), list(customer_ext)
        with server_bound_cursor() as cursor:
            cursor.execute(_RESOLVE_SQL, [msgspec.json.encode(products_asked).decode(), tenant_id,
                                          msgspec.json.encode(customers_asked).decode(), tenant_id])
            product_pks, customer_pks = cursor.fetchone()
        products = _found(products_asked, product_pks)
        customers = _found(customers_asked, customer_pks)
        return products, customers
    return (
        _ids_by_external_id(Product, tenant_id, list(product_ext)),
        _ids_by_external_id(Customer, tenant_id, list(customer_ext)),
    )


def create_placeholder_customers(tenant_id: int, external_ids: list[str]) -> dict[str, int]:
    """Create placeholder customers for ids the shop has not sent yet; return the ids of all of them
    (including any that a concurrent request created first)."""
    if not external_ids:
        return {}
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO recs_customer (tenant_id, external_id, attributes, is_placeholder, created_at,"
                " updated_at) SELECT %s, x, '{}'::jsonb, true, now(), now() FROM unnest(%s::text[]) AS x"
                " ON CONFLICT (tenant_id, external_id) DO NOTHING RETURNING external_id, id",
                [tenant_id, external_ids],
            )
            found = dict(cursor.fetchall())
            raced = [x for x in external_ids if x not in found]
            if raced:
                cursor.execute(
                    "SELECT external_id, id FROM recs_customer WHERE tenant_id = %s AND external_id = ANY(%s)",
                    [tenant_id, raced],
                )
                found.update(cursor.fetchall())
            return found
    Customer.objects.bulk_create(
        [Customer(tenant_id=tenant_id, external_id=x, is_placeholder=True) for x in external_ids],
        ignore_conflicts=True,
    )
    return _ids_by_external_id(Customer, tenant_id, external_ids)


# One event in one statement (the single-event API): resolve the product, find or create the customer
# (a placeholder, only when the product is known, as create_placeholder_customers), insert the event
# unless its event_id is stored. Outside a transaction it is its own transaction: one round trip instead
# of BEGIN, the id lookup, the INSERT and COMMIT. All sub-statements see one snapshot, so a customer
# created concurrently (after the snapshot) is neither found nor created here: `customers` is 0 and the
# caller takes the general path, which sees it.
_ONE_EVENT_SQL = f"""
WITH p AS (
    SELECT id FROM recs_product WHERE tenant_id = %(tenant)s AND external_id = %(product)s
), c_old AS (
    SELECT id FROM recs_customer WHERE tenant_id = %(tenant)s AND external_id = %(customer)s
), c_new AS (
    INSERT INTO recs_customer (tenant_id, external_id, attributes, is_placeholder, created_at, updated_at)
    SELECT %(tenant)s, %(customer)s, '{{}}'::jsonb, true, now(), now()
    WHERE EXISTS (SELECT 1 FROM p) AND NOT EXISTS (SELECT 1 FROM c_old)
    ON CONFLICT (tenant_id, external_id) DO NOTHING
    RETURNING id
), c AS (
    SELECT id FROM c_old UNION ALL SELECT id FROM c_new
), e AS (
    INSERT INTO recs_event (tenant_id, {', '.join(EVENT_COLUMNS)}, received_at)
    SELECT %(tenant)s, %(event_type)s, c.id, p.id, %(ts)s::timestamptz, %(value)s::float8, %(quantity)s::int4,
        %(price)s::numeric, %(session_id)s, %(recommendation_id)s::uuid, %(event_id)s, now()
    FROM p, c
    ON CONFLICT (tenant_id, event_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM c), (SELECT count(*) FROM e){{sync}}
"""


def insert_one_event(tenant_id: int, record: tuple, *, async_commit: bool = False) -> tuple[bool, bool, int]:
    """PostgreSQL only: store one event (EVENT_COLUMNS order, with the shop's customer and product ids
    in place of database ids) in one statement. Returns (product known, customer resolved, stored 0/1).

    `async_commit`: the statement is its own transaction (no transaction is open) and may commit without
    waiting for the WAL flush (synchronous_commit off for this transaction only; docs/adr/0004-*)."""
    params = dict(zip(EVENT_COLUMNS, record, strict=True))
    params["tenant"] = tenant_id
    params["customer"] = params.pop("customer_id")
    params["product"] = params.pop("product_id")
    sql = _ONE_EVENT_SQL_ASYNC if async_commit else _ONE_EVENT_SQL_SYNC
    with server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        products, customers, stored = cursor.fetchone()[:3]
    return products > 0, customers > 0, stored


_ONE_EVENT_SQL_SYNC = _ONE_EVENT_SQL.replace("{sync}", "")
_ONE_EVENT_SQL_ASYNC = _ONE_EVENT_SQL.replace("{sync}", ", (SELECT set_config('synchronous_commit', 'off', true))")


# The staging table mirrors recs_event's columns, except price: binary COPY sends it as float8 and the
# INSERT casts it to numeric(12,2) (the event schema bounds it so that the cast cannot overflow).
_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS event_staging_v2 ("
    " event_type varchar(32), customer_id bigint, product_id bigint, ts timestamptz, value double precision,"
    " quantity integer, price double precision, session_id varchar(128), recommendation_id uuid,"
    " event_id varchar(128)) ON COMMIT DELETE ROWS"
)
_COPY_TYPES = ("text", "int8", "int8", "timestamptz", "float8", "int4", "float8", "text", "uuid", "text")
_COLS = ", ".join(EVENT_COLUMNS)
_ROW_PARAMS = "(%s, " + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ", now())"
# Below this many rows one INSERT ... VALUES (one round trip) beats the temp table and COPY (four).
SMALL_BATCH = 100


def insert_events(tenant_id: int, records: list[tuple], *, commit_follows: bool = False) -> int:
    """Insert event rows (EVENT_COLUMNS order) inside the caller's transaction; return how many were new.

    `commit_follows`: the caller commits right after, so the staging table need not be emptied here
    (ON COMMIT DELETE ROWS does it at the commit, a TRUNCATE per batch is a needless catalog write).
    """
    if not records:
        return 0
    if is_postgres():
        if not connection.in_atomic_block:
            raise RuntimeError("insert_events must run inside a transaction (the staging table is per transaction)")
        with connection.cursor() as cursor:
            if len(records) <= SMALL_BATCH:
                params = [value for record in records for value in (tenant_id, *record)]
                cursor.execute(
                    f"INSERT INTO recs_event (tenant_id, {_COLS}, received_at) VALUES "
                    + ", ".join([_ROW_PARAMS] * len(records))
                    + " ON CONFLICT (tenant_id, event_id) DO NOTHING",
                    params,
                )
                return cursor.rowcount
            cursor.execute(_STAGING_DDL)
            # Binary COPY with declared types: psycopg encodes each row in C, several times faster than text.
            with cursor.copy(f"COPY event_staging_v2 ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_COPY_TYPES)
                for record in records:
                    copy.write_row(record)
            cursor.execute(
                f"INSERT INTO recs_event (tenant_id, {_COLS}, received_at)"
                f" SELECT %s, {_COLS}, now() FROM event_staging_v2"
                " ON CONFLICT (tenant_id, event_id) DO NOTHING",
                [tenant_id],
            )
            inserted = cursor.rowcount
            if not commit_follows:
                cursor.execute("TRUNCATE event_staging_v2")
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
