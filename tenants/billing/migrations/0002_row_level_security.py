"""PostgreSQL row-level security on the per-shop billing tables (see tenants/rls.py)."""

from django.db import migrations

from tenants import rls

TABLES = ["billing_usagecounter", "billing_usagereport"]


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = rls.migration_operations(TABLES)
