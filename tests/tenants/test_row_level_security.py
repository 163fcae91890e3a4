"""The second wall: PostgreSQL row-level security binds the service's own role, whatever the Python code does.

These tests do not use the `all_tenants` fixture (it would keep the wall lifted for the whole test): they
create rows inside `dangerously_all_tenants()` and check from outside it.
"""

from __future__ import annotations

import sys

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader

from recs.models import Product
from tenants.context import dangerously_all_tenants, tenant_context
from tenants.scoping import TenantOwnedModel

pytestmark = pytest.mark.django_db


def _count(table: str = "recs_product") -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def _guarded_tables() -> set[str]:
    """Tables named in the TABLES lists of every migration that turns on RLS (see tenants/rls.py)."""
    tables: set[str] = set()
    for migration in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.values():
        tables.update(getattr(sys.modules[type(migration).__module__], "TABLES", []))
    return tables


def test_the_service_role_is_bound_by_row_level_security():
    assert connection.vendor == "postgresql", "RLS tests need the real PostgreSQL (make test)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cursor.fetchone() == (False, False)


def test_a_tenant_context_sees_only_its_rows(two_shops):
    a, b = two_shops
    with tenant_context(a.pk):
        assert _count() == 3
        # Even an unscoped ORM query cannot cross the wall.
        assert set(Product.dangerously_unscoped.values_list("tenant_id", flat=True)) == {a.pk}
    with tenant_context(b.pk):
        assert _count() == 2


def test_no_tenant_set_sees_nothing(two_shops):
    assert _count() == 0
    assert Product.dangerously_unscoped.count() == 0


def test_all_tenants_sees_both(two_shops):
    with dangerously_all_tenants():
        assert _count() == 5


def test_context_is_restored_when_left(two_shops):
    a, _ = two_shops
    with dangerously_all_tenants():
        with tenant_context(a.pk):
            assert _count() == 3
        assert _count() == 5
    assert _count() == 0


def test_writing_another_tenants_row_is_refused(two_shops):
    a, b = two_shops
    with tenant_context(a.pk):
        with (
            pytest.raises(DatabaseError, match="row-level security"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                "INSERT INTO recs_product (tenant_id, external_id, title, description, category_path, brand,"
                " currency, available, tags, attributes, deleted, created_at, updated_at)"
                " VALUES (%s, 'smuggled', 't', '', '[]', '', '', true, '[]', '{}', false, now(), now())",
                [b.pk],
            )
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            Product.objects.create(tenant_id=b.pk, external_id="smuggled-orm", title="t")
        # Updates and deletes simply do not see B's rows.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE recs_product SET title = 'pwned' WHERE tenant_id = %s", [b.pk])
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM recs_product WHERE tenant_id = %s", [b.pk])
            assert cursor.rowcount == 0
    with dangerously_all_tenants():
        b_rows = Product.objects.for_tenant(b)
        assert b_rows.count() == 2
        assert not b_rows.filter(external_id__startswith="smuggled").exists()
        assert not b_rows.filter(title="pwned").exists()


def test_a_non_numeric_setting_sees_nothing(two_shops):
    a, _ = two_shops
    connection.ensure_connection()
    # Straight to psycopg: the backend's execute wrapper would put the scope's own value back first.
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, false)", [str(a.pk)])
        cursor.execute("SELECT count(*) FROM recs_product")
        assert cursor.fetchone()[0] == 3  # the policy reads the setting: the control case
        for value in (f"{a.pk} OR true", f"{a.pk},1", "", "**"):
            cursor.execute("SELECT set_config('app.tenant_id', %s, false)", [value])
            cursor.execute("SELECT count(*) FROM recs_product")
            assert cursor.fetchone()[0] == 0, value
    connection.applied_tenant_setting = None


def test_every_guarded_table_has_forced_rls():
    tables = _guarded_tables()
    assert "recs_product" in tables and "recs_event" in tables
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relkind = 'r' AND relname = ANY(%s)",
            [sorted(tables)],
        )
        flags = {name: (enabled, forced) for name, enabled, forced in cursor.fetchall()}
        cursor.execute("SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation'")
        with_policy = {row[0] for row in cursor.fetchall()}
    assert set(flags) == tables, "a TABLES entry names no table"
    assert {t for t, f in flags.items() if f != (True, True)} == set()
    assert tables <= with_policy


def test_every_policy_reads_the_tenant_setting_once_per_statement(two_shops):
    """The checks are scalar subqueries (InitPlans), not calls inlined into every row's check."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, qual, with_check FROM pg_policies WHERE policyname = 'tenant_isolation'")
        policies = cursor.fetchall()
        assert {table for table, _, _ in policies} >= _guarded_tables()
        for table, using, with_check in policies:
            for expression in (using, with_check):
                assert "(SELECT recsvc_current_tenant()" in expression.replace("( ", "("), (table, expression)
        a, _ = two_shops
        with tenant_context(a.pk):
            cursor.execute("EXPLAIN SELECT count(*) FROM recs_product")
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "InitPlan" in plan and "current_setting" not in plan.split("InitPlan")[0], plan


def test_every_tenant_owned_model_is_guarded():
    models = [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]
    assert Product in models
    missing = {m._meta.db_table for m in models} - _guarded_tables()
    assert missing == set(), f"add these tables to a row-level-security migration's TABLES: {sorted(missing)}"


@pytest.mark.urls("tests.tenants.failing_view_urls")
def test_an_unhandled_error_in_a_view_does_not_leave_the_tenant_set(api, tenant):
    """A 500 inside a tenant view must still clear `app.tenant_id` on the (pooled) connection."""
    from django.db import connection

    api.raise_request_exception = False
    assert api.get("/v1/failing-products").status_code == 500
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.tenant_id', true)")
        assert cursor.fetchone()[0] != str(tenant.pk)
