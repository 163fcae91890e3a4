"""Every tenant_isolation policy evaluates the tenant setting once per statement (see tenants/rls.py).

It rewrites the policies of all apps' guarded tables, so it runs after the migrations that created them."""

from django.db import migrations

from tenants import rls


class Migration(migrations.Migration):
    dependencies = [
        ("recs", "0007_event_references_without_constraints"),
        ("training", "0004_schedule_row_level_security"),
        ("billing", "0002_row_level_security"),
    ]
    operations = rls.evaluate_checks_once_operations()
