"""The runtime and maintenance database roles get row access to every table, and the all-tenants bypass
needs the maintenance role, not only the setting (see tenants/rls.py, ADR 0013).

Run by the owner role (the one that creates the tables); a no-op on SQLite."""

from django.conf import settings
from django.db import migrations

from tenants import rls


def _grant(apps, schema_editor):
    rls.grant_runtime(schema_editor, settings.RECSVC_DB_RUNTIME_ROLE)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_tenant_billing"),
    ]

    operations = [migrations.RunPython(_grant, migrations.RunPython.noop)]
