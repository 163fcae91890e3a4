"""The hot paths' statements are prepared on the connection, and a prepared plan still obeys each
tenant's row-level-security wall."""

from __future__ import annotations

import pytest
from django.db import connection

from core.postgres import server_bound_cursor
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

_COUNT = "SELECT count(*) FROM recs_product WHERE id >= %s"


def _prepared(statement: str) -> bool:
    with connection.connection.cursor() as cursor:  # psycopg's own: nothing of ours runs first
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [statement])
        return cursor.fetchone()[0] > 0


def _server_count() -> int:
    with server_bound_cursor() as cursor:
        cursor.execute(_COUNT, [0])
        return cursor.fetchone()[0]


def test_a_statement_run_through_the_server_bound_cursor_is_prepared_after_a_few_runs(two_shops):
    a, _ = two_shops
    server_text = _COUNT.replace("%s", "$1")
    with tenant_context(a.pk):
        counts = {_server_count() for _ in range(6)}
        assert counts == {3}
        assert _prepared(server_text)
        # Django's own cursor binds on the client: the same query, run as often, is never prepared.
        with connection.cursor() as cursor:
            for _ in range(6):
                cursor.execute(_COUNT + " AND true", [0])
        assert not _prepared("SELECT count(*) FROM recs_product WHERE id >= 0 AND true")


def test_a_prepared_plan_sees_only_the_acting_tenants_rows(two_shops):
    a, b = two_shops
    for _ in range(3):  # past the threshold, so the later runs execute the prepared statement
        with tenant_context(a.pk):
            assert _server_count() == 3
        with tenant_context(b.pk):
            assert _server_count() == 2
    assert _server_count() == 0  # no tenant: the wall shows nothing
