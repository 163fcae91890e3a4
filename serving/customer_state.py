"""A known customer's events as one request needs them, read in one statement.

An uncached answer needs three views of the customer's events: the latest ones (the customer embedding,
serving.funnel.recent_history), the products they bought (the purchased filter,
serving.funnel.purchased_products) and their activity per event type (the ranker's customer features,
serving.online_features.customer_activity). Each was its own query, with the ORM's cost on top; here
they are three branches of one UNION ALL over the (tenant, customer, ts) index, and the functions above
take the rows instead of querying. The rows and their meaning are exactly those the separate queries
return (tests/serving/test_customer_state.py compares them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.utils import timezone

from recs.models import Customer, Event
from tenants.postgres.cursors import server_bound_cursor

PURCHASE = "purchase"


def customer_pk(tenant_id: int, external_id: str | None) -> int | None:
    """The customer's row id (None: no id given, or a customer the shop has not sent). On PostgreSQL a
    prepared statement: the ORM's query building cost an uncached answer as much as reading its events."""
    if not external_id:
        return None
    if connection.vendor != "postgresql":
        customers = Customer.objects.for_tenant(tenant_id).filter(external_id=external_id)
        return customers.values_list("pk", flat=True).first()
    with server_bound_cursor() as cursor:
        cursor.execute(f"SELECT id FROM {Customer._meta.db_table} WHERE tenant_id = %s AND external_id = %s",
                       [tenant_id, external_id])
        row = cursor.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class CustomerEvents:
    # (id, ts in unix seconds, product_id, event_type, value), newest first, at most the limit asked; a float
    # rather than a datetime, which psycopg (through Django's loader) parses in Python, row by row
    recent: list[tuple]
    purchased: np.ndarray  # distinct product pks bought within the window asked
    activity: list[tuple]  # (event_type, n, n_with_positive_value, sum of positive values)


def read_customer_events(
    tenant_id: int, customer_pk: int | None, *, recent_limit: int, purchased_days: int | None
) -> CustomerEvents | None:
    """`purchased_days`: as purchased_products (None: ever; 0: none are read). None without a customer,
    and on the embedded SQLite (the callers then read each part on its own)."""
    if customer_pk is None or connection.vendor != "postgresql":
        return None
    table = Event._meta.db_table
    who = f"FROM {table} WHERE tenant_id = %s AND customer_id = %s"
    params: list = [tenant_id, customer_pk, recent_limit]
    parts = [
        f"(SELECT 'r', id, extract(epoch FROM ts)::float8, product_id, event_type, value, NULL::bigint,"
        f" NULL::bigint, NULL::float8 {who}"
        " ORDER BY ts DESC, id DESC LIMIT %s)",
        f"(SELECT 'a', NULL, NULL, NULL, event_type, NULL, count(*), count(*) FILTER (WHERE value > 0),"
        f" sum(value) FILTER (WHERE value > 0) {who} GROUP BY event_type)",
    ]
    params += [tenant_id, customer_pk]
    if purchased_days != 0:
        since = "" if purchased_days is None else " AND ts >= %s"
        parts.append(f"(SELECT DISTINCT 'p', NULL::bigint, NULL::float8, product_id, NULL, NULL::float8,"
                     f" NULL::bigint, NULL::bigint, NULL::float8 {who} AND event_type = %s{since})")
        params += [tenant_id, customer_pk, PURCHASE]
        if purchased_days is not None:
            params.append(timezone.now() - dt.timedelta(days=purchased_days))
    with server_bound_cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    return CustomerEvents(
        recent=[r[1:6] for r in rows if r[0] == "r"],
        purchased=np.array([r[3] for r in rows if r[0] == "p"], dtype=np.int64),
        activity=[(r[4], r[6], r[7], r[8]) for r in rows if r[0] == "a"],
    )
