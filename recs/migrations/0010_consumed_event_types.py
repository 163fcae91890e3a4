from django.db import migrations, models

import recs.models.rules


class Migration(migrations.Migration):
    dependencies = [
        ("recs", "0009_webhook_body_digest"),
    ]

    operations = [
        migrations.RenameField(
            model_name="recommendationsettings", old_name="exclude_purchased_days", new_name="exclude_consumed_days",
        ),
        migrations.AddField(
            model_name="recommendationsettings",
            name="consumed_event_types",
            field=models.JSONField(default=recs.models.rules.default_consumed_event_types),
        ),
    ]
