"""PostgreSQL row-level security on the integration tables (see tenants/rls.py)."""

from django.db import migrations

from tenants import rls

TABLES = [
    "recs_integrationconnection",
    "recs_webhookdelivery",
    "recs_dataexport",
    "recs_auditlog",
]


class Migration(migrations.Migration):
    dependencies = [("recs", "0003_integrations")]
    operations = rls.migration_operations(TABLES)
