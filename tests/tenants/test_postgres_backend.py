"""The backend keeps `app.tenant_id` equal to the acting tenant at every statement, sending it lazily.

`_server_setting()` reads the value over psycopg directly, past the backend's execute wrapper, to see
what PostgreSQL holds without making the backend send anything first.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from recs.models import Product
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db


def _server_setting() -> str:
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.tenant_id', true), '')")
        return cursor.fetchone()[0]


def _visible() -> int:
    return Product.dangerously_unscoped.count()


def test_a_scope_is_sent_with_its_first_statement_and_not_taken_back_on_leaving(two_shops):
    a, _ = two_shops
    assert _visible() == 0
    with tenant_context(a.pk):
        assert _server_setting() == ""  # entering the scope sent nothing
        assert _visible() == 3
        assert _server_setting() == str(a.pk)
    # Leaving sends nothing either: a request that ends here pays no round trip ...
    assert _server_setting() == str(a.pk)
    # ... and the next statement outside any scope puts the empty setting back first.
    assert _visible() == 0
    assert _server_setting() == ""


def test_switching_tenants_between_statements_switches_the_wall(two_shops):
    a, b = two_shops
    for _ in range(2):
        with tenant_context(a.pk):
            assert _visible() == 3
        with tenant_context(b.pk):
            assert _visible() == 2
            with tenant_context(a.pk):
                assert _visible() == 3
            assert _visible() == 2


def test_a_rolled_back_savepoint_forgets_what_it_sent(two_shops):
    _, b = two_shops
    assert _visible() == 0
    savepoint = transaction.savepoint()  # begun while PostgreSQL holds the empty value
    with tenant_context(b.pk):
        assert _visible() == 2  # b's value is sent inside the savepoint ...
        transaction.savepoint_rollback(savepoint)
        assert _server_setting() == ""  # ... and undone by its rollback, still inside b's scope
        assert _visible() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_and_a_new_connection_forget_what_was_sent(two_shops):
    a, b = two_shops
    with tenant_context(a.pk):
        assert _visible() == 3
    with tenant_context(b.pk):
        with pytest.raises(RuntimeError), transaction.atomic():
            assert _visible() == 2
            raise RuntimeError("roll back")
        assert _server_setting() == str(a.pk)
        assert _visible() == 2
        connection.close()
        assert _visible() == 2  # a fresh session starts without the setting: it is sent again
    with tenant_context(a.pk):
        connection.close()
    assert _visible() == 0


def test_a_statement_that_sets_the_value_itself_is_not_trusted(two_shops):
    a, _ = two_shops
    with tenant_context(a.pk):
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.tenant_id', '', false)")
        assert _visible() == 3


# --- the health check (CONN_HEALTH_CHECKS) ------------------------------------------------------------


def _other_session():
    """A second session as the same role: it may watch and terminate the service's backends."""
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"],
                           password=db["PASSWORD"] or None, autocommit=True)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _new_request() -> None:
    """What Django does when a request starts (request_started -> close_old_connections)."""
    connection.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True)
def test_the_health_check_of_an_idle_connection_sends_no_statement():
    assert connection.health_check_enabled
    pid = _backend_pid()
    with _other_session() as other:
        _new_request()
        assert connection.is_usable()
        connection.close_if_health_check_failed()
        last = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]
    assert last == "SELECT pg_backend_pid()"  # not Django's SELECT 1
    assert _backend_pid() == pid


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cursor_of", ["django", "server_bound"], ids=["django-cursor", "server-bound-cursor"])
def test_a_terminated_backend_is_replaced_before_the_next_requests_first_statement(cursor_of):
    from core.postgres import server_bound_cursor

    pid = _backend_pid()
    with _other_session() as other:
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
    _new_request()
    assert not connection.is_usable()
    with (connection.cursor() if cursor_of == "django" else server_bound_cursor()) as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
