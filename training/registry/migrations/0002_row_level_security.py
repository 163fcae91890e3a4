"""PostgreSQL row-level security on the model registry (see tenants/rls.py)."""

from django.db import migrations

from tenants import rls

TABLES = ["training_modelversion"]


class Migration(migrations.Migration):
    dependencies = [("training", "0001_initial")]
    operations = rls.migration_operations(TABLES)
