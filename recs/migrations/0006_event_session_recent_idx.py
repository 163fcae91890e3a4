"""An index for a session's newest events (the funnel's per-request read for anonymous visitors).

recs_event is the largest table: on PostgreSQL the index is built CONCURRENTLY (no write lock on the
table while it builds), which cannot run inside a transaction, hence `atomic = False`. Other databases
(the embedded SQLite default) get a plain CREATE INDEX.
"""

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.add_index(model, self.index, **concurrently)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
            schema_editor.remove_index(model, self.index, **concurrently)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("recs", "0005_rules")]
    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="event",
            index=models.Index(
                condition=models.Q(("session_id", ""), _negated=True),
                fields=["tenant", "session_id", "-ts"],
                name="event_session_recent_idx",
            ),
        ),
    ]
