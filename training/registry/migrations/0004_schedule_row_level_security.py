"""PostgreSQL row-level security on the training schedules (see tenants/rls.py)."""

from django.db import migrations

from tenants import rls

TABLES = ["training_trainingschedule"]


class Migration(migrations.Migration):
    dependencies = [("training", "0003_schedule_and_one_run_in_flight")]
    operations = rls.migration_operations(TABLES)
