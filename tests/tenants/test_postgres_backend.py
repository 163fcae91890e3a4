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
