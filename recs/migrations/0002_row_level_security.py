"""PostgreSQL row-level security on every tenant-owned table: the second wall behind scoped querysets.

A row is visible and writable only when `tenant_id` equals the connection setting `app.tenant_id`
(set by tenants.context), or when that setting is '*' (tenants.context.dangerously_all_tenants).
FORCE makes the policy bind the tables' owner too; the service must connect as a role that is not a
superuser and lacks BYPASSRLS (see the README), since those skip every policy.
"""

from django.db import migrations

TABLES = [
    "recs_customer",
    "recs_customerversion",
    "recs_product",
    "recs_productversion",
    "recs_eventtype",
    "recs_event",
    "recs_importjob",
]

FUNCTION = """
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


def apply(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    for table in TABLES:
        schema_editor.execute(POLICY.format(t=table))


def revert(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(UNDO.format(t=table))


class Migration(migrations.Migration):
    dependencies = [("recs", "0001_initial")]
    operations = [migrations.RunPython(apply, revert)]
