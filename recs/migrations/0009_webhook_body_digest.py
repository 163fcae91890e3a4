"""Digests of accepted webhook bodies (recs/integrations/replay.py), under row-level security."""

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models

from tenants import rls

TABLES = ["recs_webhookbodydigest"]


class Migration(migrations.Migration):

    dependencies = [
        ('recs', '0008_row_level_security_checks_evaluated_once'),
        ('tenants', '0002_tenant_billing'),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookBodyDigest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sha256', models.CharField(max_length=64)),
                ('topic', models.CharField(max_length=100)),
                ('kind', models.CharField(max_length=100)),
                ('first_seen_at', models.DateTimeField(auto_now_add=True)),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='recs.integrationconnection')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'abstract': False,
                'base_manager_name': 'dangerously_unscoped',
                'constraints': [models.UniqueConstraint(fields=('tenant', 'connection', 'sha256'), name='uniq_webhook_body_digest')],
            },
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('dangerously_unscoped', django.db.models.manager.Manager()),
            ],
        ),
    ] + rls.migration_operations(TABLES)
