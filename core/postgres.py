"""Prepared statements for the hot paths' hand-written SQL.

Django's cursors bind parameters on the client (psycopg's ClientCursor): each statement reaches
PostgreSQL as new text, so it is parsed and planned on every execution, and ClientCursor never prepares.
The hot statements (storing one event, the candidates' rows and the customer's events of an uncached
answer) are few and fixed, and planning is most of their cost in the database. A server-binding cursor
on Django's connection sends the parameters apart from the text, and psycopg prepares a statement once
it has run `prepare_threshold` times on the connection (config/settings.py sets it; Django's default,
None, disables preparing).
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper


def server_bound_cursor() -> CursorWrapper:
    """A cursor of Django's connection whose statements are prepared after a few executions.

    It goes through Django's execute wrappers (the tenant setting of row-level security, query logging
    in debug). Use it for fixed statement texts only: every distinct text takes a slot in psycopg's
    per-connection cache of prepared statements."""
    connection.close_if_health_check_failed()  # as Django's own cursors do (once per request, no round trip)
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    return wrapper(raw, connection)


def pk_by_external_id(model: Any, tenant_id: int, external_id: str) -> int | None:
    """The row id of the tenant's `model` row (a customer, a product) with the shop's id `external_id`,
    None for an id the shop has not sent. On PostgreSQL a prepared statement: the ORM's query building
    cost the hot paths about as much as the read itself (the embedded SQLite goes through the ORM)."""
    if connection.vendor != "postgresql":
        return model.objects.for_tenant(tenant_id).filter(external_id=external_id).values_list("pk", flat=True).first()
    with server_bound_cursor() as cursor:
        cursor.execute(f"SELECT id FROM {model._meta.db_table} WHERE tenant_id = %s AND external_id = %s",
                       [tenant_id, external_id])
        row = cursor.fetchone()
    return row[0] if row else None
