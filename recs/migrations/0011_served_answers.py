"""Served answers (recs/attribution/), under row-level security."""

import django.db.models.deletion
import django.db.models.manager
from django.db import migrations, models

from tenants import rls

TABLES = ["recs_servedanswer"]


class Migration(migrations.Migration):

    dependencies = [
        ('recs', '0010_consumed_event_types'),
        ('tenants', '0003_database_roles'),
    ]

    operations = [
        migrations.CreateModel(
            name='ServedAnswer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('recommendation_id', models.UUIDField()),
                ('served_at', models.DateTimeField()),
                ('endpoint', models.CharField(max_length=16)),
                ('variant', models.CharField(max_length=64)),
                ('model_version', models.IntegerField(blank=True, null=True)),
                ('reason', models.CharField(blank=True, default='', max_length=32)),
                ('customer_external_id', models.CharField(blank=True, default='', max_length=128)),
                ('session_id', models.CharField(blank=True, default='', max_length=128)),
                ('items', models.JSONField(default=list)),
                ('propensities', models.JSONField(default=list)),
            ],
            options={
                'abstract': False,
                'base_manager_name': 'dangerously_unscoped',
            },
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('dangerously_unscoped', django.db.models.manager.Manager()),
            ],
        ),
        migrations.AddField(
            model_name='servedanswer',
            name='tenant',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant'),
        ),
        migrations.AddIndex(
            model_name='servedanswer',
            index=models.Index(fields=['tenant', 'served_at'], name='served_answer_tenant_ts_idx'),
        ),
        migrations.AddConstraint(
            model_name='servedanswer',
            constraint=models.UniqueConstraint(fields=('tenant', 'recommendation_id'), name='uniq_served_answer'),
        ),
    ] + rls.migration_operations(TABLES)
