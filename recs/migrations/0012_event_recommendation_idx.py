"""Feedback events by recommendation_id (attribution's join), built without blocking ingestion on PostgreSQL.

CREATE INDEX CONCURRENTLY cannot run inside a transaction, hence a non-atomic migration of its own; SQLite
(the embedded demo) builds it the plain way.
"""

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("recommendation_id__isnull", False)), fields=["tenant", "recommendation_id"],
    name="event_recommendation_idx",
)


def _create(apps, schema_editor):
    model = apps.get_model("recs", "Event")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(model, INDEX, concurrently=True)
    else:
        schema_editor.add_index(model, INDEX)


def _drop(apps, schema_editor):
    model = apps.get_model("recs", "Event")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, INDEX, concurrently=True)
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("recs", "0011_served_answers"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="event", index=INDEX)],
            database_operations=[migrations.RunPython(_create, _drop)],
        ),
    ]
