"""A known customer's events as one request needs them, read in one statement.

An uncached answer needs three views of the customer's events: the latest ones (the customer embedding,
serving.funnel.recent_history), the products they consumed (bought, rated: the consumed filter,
serving.funnel.consumed_products) and their activity per event type (the ranker's customer features,
serving.online_features.customer_activity). Each was its own query, with the ORM's cost on top; here
they are three branches of one UNION ALL over the (tenant, customer, ts) index, and the functions above
take the rows instead of querying. The rows and their meaning are exactly those the separate queries
return (tests/serving/test_customer_state.py compares them). Given the shop's customer id instead of the
row id, the same statement resolves it first (a fourth branch returns it): a round trip fewer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.utils import timezone

from core.postgres import pk_by_external_id, server_bound_cursor
from recs.models import Customer, Event


def customer_pk(tenant_id: int, external_id: str | None) -> int | None:
    """The customer's row id (None: no id given, or a customer the shop has not sent)."""
    return pk_by_external_id(Customer, tenant_id, external_id) if external_id else None


@dataclass(frozen=True)
class CustomerEvents:
    customer_pk: int
    # (id, ts in unix seconds, product_id, event_type, value), newest first, at most the limit asked; a float
    # rather than a datetime, which psycopg (through Django's loader) parses in Python, row by row
    recent: list[tuple]
    consumed: np.ndarray  # distinct product pks with an event of a consumed type within the window asked
    activity: list[tuple]  # (event_type, n, n_with_positive_value, sum of positive values)


def read_customer_events(
    tenant_id: int, customer_pk: int | None, *, recent_limit: int, consumed_types: tuple[str, ...],
    consumed_days: int | None, external_id: str | None = None,
) -> CustomerEvents | None:
    """`consumed_types`, `consumed_days`: as consumed_products (None: ever; 0: none are read). `external_id`: the shop's
    id of the customer, resolved in the same statement (when `customer_pk` is None). None without a
    customer, for an id the shop has not sent, and on the embedded SQLite (the callers then read each part
    on its own)."""
    if connection.vendor != "postgresql" or (customer_pk is None and not external_id):
        return None
    table = Event._meta.db_table
    if customer_pk is not None:
        head, params, who_id, bind = "", [], "%s", [tenant_id, customer_pk]
    else:
        # MATERIALIZED: one index probe for the id, which every branch below then reads.
        head = (f"WITH c AS MATERIALIZED (SELECT id FROM {Customer._meta.db_table}"
                " WHERE tenant_id = %s AND external_id = %s) ")
        params, who_id, bind = [tenant_id, external_id], "(SELECT id FROM c)", [tenant_id]
    who = f"FROM {table} WHERE tenant_id = %s AND customer_id = {who_id}"
    parts = [
        f"(SELECT 'r', id, extract(epoch FROM ts)::float8, product_id, event_type, value, NULL::bigint,"
        f" NULL::bigint, NULL::float8 {who}"
        " ORDER BY ts DESC, id DESC LIMIT %s)",
        f"(SELECT 'a', NULL, NULL, NULL, event_type, NULL, count(*), count(*) FILTER (WHERE value > 0),"
        f" sum(value) FILTER (WHERE value > 0) {who} GROUP BY event_type)",
    ]
    params += [*bind, recent_limit, *bind]
    if consumed_days != 0 and consumed_types:
        since = "" if consumed_days is None else " AND ts >= %s"
        parts.append(f"(SELECT DISTINCT 'p', NULL::bigint, NULL::float8, product_id, NULL, NULL::float8,"
                     f" NULL::bigint, NULL::bigint, NULL::float8 {who} AND event_type = ANY(%s){since})")
        params += [*bind, list(consumed_types)]
        if consumed_days is not None:
            params.append(timezone.now() - dt.timedelta(days=consumed_days))
    if customer_pk is None:
        parts.append("(SELECT 'c', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM c)")
    with server_bound_cursor() as cursor:
        cursor.execute(head + " UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    if customer_pk is None:
        found = [r[1] for r in rows if r[0] == "c"]
        if not found:
            return None
        customer_pk = found[0]
    return CustomerEvents(
        customer_pk=customer_pk,
        recent=[r[1:6] for r in rows if r[0] == "r"],
        consumed=np.array([r[3] for r in rows if r[0] == "p"], dtype=np.int64),
        activity=[(r[4], r[6], r[7], r[8]) for r in rows if r[0] == "a"],
    )
