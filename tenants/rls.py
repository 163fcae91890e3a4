"""Row-level security for tenant-owned tables, applied by each app's migration.

A row is visible and writable only when `tenant_id` equals the connection setting `app.tenant_id`
(set by tenants.context), or when that setting is '*' (tenants.context.dangerously_all_tenants).
FORCE makes the policy bind the tables' owner too; the service must connect as a role that is not a
superuser and lacks BYPASSRLS (see the README), since those skip every policy.
"""

from __future__ import annotations

from collections.abc import Iterable

FUNCTIONS = """
CREATE OR REPLACE FUNCTION recsvc_current_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('app.tenant_id', true) ~ '^[0-9]{1,18}$'
                THEN current_setting('app.tenant_id', true)::bigint END
$$;
CREATE OR REPLACE FUNCTION recsvc_all_tenants() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('app.tenant_id', true), '') = '*'
$$;
"""

POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {t}
    USING (tenant_id = recsvc_current_tenant() OR recsvc_all_tenants())
    WITH CHECK (tenant_id = recsvc_current_tenant() OR recsvc_all_tenants());
"""

UNDO = """
DROP POLICY IF EXISTS tenant_isolation ON {t};
ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;
"""


def enable(schema_editor, tables: Iterable[str]) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS)
    for table in tables:
        schema_editor.execute(POLICY.format(t=table))


def disable(schema_editor, tables: Iterable[str]) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in tables:
        schema_editor.execute(UNDO.format(t=table))


def migration_operations(tables: list[str]):
    """RunPython operations for a migration that guards `tables`."""
    from django.db import migrations

    return [
        migrations.RunPython(
            lambda apps, schema_editor: enable(schema_editor, tables),
            lambda apps, schema_editor: disable(schema_editor, tables),
        )
    ]
