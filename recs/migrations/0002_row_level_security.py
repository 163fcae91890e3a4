"""PostgreSQL row-level security on every tenant-owned table of recs (see tenants/rls.py)."""

from django.db import migrations

from tenants import rls

TABLES = [
    "recs_customer",
    "recs_customerversion",
    "recs_product",
    "recs_productversion",
    "recs_eventtype",
    "recs_event",
    "recs_importjob",
]


class Migration(migrations.Migration):
    dependencies = [("recs", "0001_initial")]
    operations = rls.migration_operations(TABLES)
