"""Experiments, their variants and statistics snapshots, under row-level security."""

import django.db.models.deletion
import django.db.models.manager
import experiments.models
from django.db import migrations, models

from tenants import rls

TABLES = ["experiments_experiment", "experiments_variant", "experiments_statssnapshot"]


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenants', '0003_database_roles'),
    ]

    operations = [
        migrations.CreateModel(
            name='Experiment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('status', models.CharField(choices=[('draft', 'Draft'), ('running', 'Running'), ('paused', 'Paused'), ('stopped', 'Stopped')], default='draft', max_length=8)),
                ('salt', models.CharField(default=experiments.models.new_salt, max_length=32)),
                ('goal', models.CharField(max_length=32)),
                ('secondary', models.JSONField(default=list)),
                ('guardrails', models.JSONField(default=list)),
                ('holdout_share', models.FloatField(default=0.0)),
                ('traffic_share', models.FloatField(default=1.0)),
                ('slot_start', models.IntegerField(blank=True, null=True)),
                ('slot_end', models.IntegerField(blank=True, null=True)),
                ('planned_units', models.PositiveIntegerField(default=10000)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('stopped_at', models.DateTimeField(blank=True, null=True)),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
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
        migrations.CreateModel(
            name='StatsSnapshot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('variant', models.CharField(max_length=32)),
                ('day', models.DateField()),
                ('units', models.IntegerField()),
                ('stats', models.JSONField()),
                ('computed_at', models.DateTimeField()),
                ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='snapshots', to='experiments.experiment')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'ordering': ['day', 'variant'],
                'abstract': False,
                'base_manager_name': 'dangerously_unscoped',
            },
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('dangerously_unscoped', django.db.models.manager.Manager()),
            ],
        ),
        migrations.CreateModel(
            name='Variant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=32)),
                ('position', models.PositiveSmallIntegerField()),
                ('weight', models.FloatField()),
                ('config', models.JSONField(default=dict)),
                ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='variants', to='experiments.experiment')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.tenant')),
            ],
            options={
                'ordering': ['position'],
                'abstract': False,
                'base_manager_name': 'dangerously_unscoped',
            },
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('dangerously_unscoped', django.db.models.manager.Manager()),
            ],
        ),
        migrations.AddIndex(
            model_name='experiment',
            index=models.Index(fields=['tenant', 'status'], name='experiment_tenant_status_idx'),
        ),
        migrations.AddConstraint(
            model_name='experiment',
            constraint=models.UniqueConstraint(fields=('tenant', 'name'), name='uniq_experiment_name'),
        ),
        migrations.AddConstraint(
            model_name='statssnapshot',
            constraint=models.UniqueConstraint(fields=('experiment', 'variant', 'day'), name='uniq_experiment_snapshot'),
        ),
        migrations.AddConstraint(
            model_name='variant',
            constraint=models.UniqueConstraint(fields=('experiment', 'name'), name='uniq_variant_name'),
        ),
    ] + rls.migration_operations(TABLES)
