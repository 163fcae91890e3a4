"""Row-level security for tenant-owned tables, applied by each app's migration.

A row is visible and writable only when `tenant_id` equals the connection setting `app.tenant_id`
(set by tenants.context), or when that setting is '*' and the session acts as the maintenance role
(tenants.context.dangerously_all_tenants switches to it): a setting alone, which any session may change,
lifts nothing. FORCE makes the policy bind the tables' owner too; the service must connect as a role that
is not a superuser and lacks BYPASSRLS (docs/architecture.md), since those skip every policy.

Roles (ADR 0013): an owner role runs the migrations and owns the tables; the runtime role the service
connects as gets only SELECT/INSERT/UPDATE/DELETE (`grant_runtime`), so it cannot switch row-level
security off, drop a policy or replace these functions; `recsvc_maintenance` (NOLOGIN) is granted to the
runtime role, and the bypass holds only while the session acts as it (`current_user`, after an explicit
`SET ROLE`, whatever the grant's inheritance), so a deployment can withhold it from the processes that do
not need it.
"""

from __future__ import annotations

from collections.abc import Iterable

from tenants.context import MAINTENANCE_ROLE

FUNCTIONS = """
CREATE OR REPLACE FUNCTION recsvc_current_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('app.tenant_id', true) ~ '^[0-9]{1,18}$'
                THEN current_setting('app.tenant_id', true)::bigint END
$$;
CREATE OR REPLACE FUNCTION recsvc_all_tenants() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.tenant_id', true), '') = '*'
       AND current_user = 'recsvc_maintenance'
$$;
"""

_DML = "SELECT, INSERT, UPDATE, DELETE"

# The functions are wrapped in scalar subqueries so that PostgreSQL evaluates each once per statement
# (an InitPlan) rather than inlining them into every row's check: with the bare calls, each row read or
# written re-read the setting and matched it against the regular expression.
CHECK = "tenant_id = (SELECT recsvc_current_tenant()) OR (SELECT recsvc_all_tenants())"
_INLINED_CHECK = "tenant_id = recsvc_current_tenant() OR recsvc_all_tenants()"  # before recs 0008

POLICY = f"""
ALTER TABLE {{t}} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {{t}} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {{t}} USING ({CHECK}) WITH CHECK ({CHECK});
"""

UNDO = """
DROP POLICY IF EXISTS tenant_isolation ON {t};
ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;
"""


def _require_maintenance_role(schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [MAINTENANCE_ROLE])
        if cursor.fetchone() is None:
            raise RuntimeError(
                f"the database role {MAINTENANCE_ROLE} does not exist: create it (NOLOGIN) and grant it to the"
                " service's role before migrating (deploy/local/services.sh, docs/deployment.md)"
            )


def grant_runtime(schema_editor, runtime_role: str) -> None:
    """Give the runtime role and the maintenance role row access (DML, sequences) to every table of the
    schema, now and for the tables the migrating role (the owner) creates later. Nothing else: they can
    neither alter nor own a table."""
    if schema_editor.connection.vendor != "postgresql":
        return
    _require_maintenance_role(schema_editor)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = %s AND rolname <> current_user", [runtime_role])
        grantees = [MAINTENANCE_ROLE] + [row[0] for row in cursor.fetchall()]
    quote = schema_editor.quote_name
    to = ", ".join(quote(role) for role in grantees)
    schema_editor.execute(f"GRANT {_DML} ON ALL TABLES IN SCHEMA public TO {to}")
    schema_editor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {to}")
    schema_editor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {_DML} ON TABLES TO {to}")
    schema_editor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {to}")
    schema_editor.execute(FUNCTIONS)


def enable(schema_editor, tables: Iterable[str]) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    _require_maintenance_role(schema_editor)
    schema_editor.execute(FUNCTIONS)
    for table in tables:
        schema_editor.execute(POLICY.format(t=table))


def disable(schema_editor, tables: Iterable[str]) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in tables:
        schema_editor.execute(UNDO.format(t=table))


def _guarded_tables(schema_editor) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation' ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def _set_check(schema_editor, check: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _guarded_tables(schema_editor):
        schema_editor.execute(f"ALTER POLICY tenant_isolation ON {table} USING ({check}) WITH CHECK ({check})")


def evaluate_checks_once_operations():
    """RunPython operations that rewrite every guarded table's policy to CHECK (recs 0008)."""
    from django.db import migrations

    return [
        migrations.RunPython(
            lambda apps, schema_editor: _set_check(schema_editor, CHECK),
            lambda apps, schema_editor: _set_check(schema_editor, _INLINED_CHECK),
        )
    ]


def migration_operations(tables: list[str]):
    """RunPython operations for a migration that guards `tables`."""
    from django.db import migrations

    return [
        migrations.RunPython(
            lambda apps, schema_editor: enable(schema_editor, tables),
            lambda apps, schema_editor: disable(schema_editor, tables),
        )
    ]
