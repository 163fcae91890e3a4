"""PostgreSQL row-level security on the shops' own privacy rows (see tenants/rls.py). The releases are not
a shop's rows: they hold noisy aggregates only, shared by the shops taking part."""

from django.db import migrations

from tenants import rls

TABLES = ["privacy_privacysettings", "privacy_budgetwindow", "privacy_charge"]


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_initial")]
    operations = rls.migration_operations(TABLES)
