"""A shop's A/B experiments: the experiment, its variants (serving configurations) and the daily snapshots
of their sufficient statistics (written by experiments.tasks, read by the results pages).

Every table is tenant-owned under row-level security (migration 0001).
"""

from __future__ import annotations

import secrets

from django.db import models

from tenants.scoping import TenantOwnedModel


def new_salt() -> str:
    return secrets.token_hex(8)


class Experiment(TenantOwnedModel):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"

    name = models.CharField(max_length=100)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    # Hashed with the unit id to pick the variant: a new salt reshuffles every unit.
    salt = models.CharField(max_length=32, default=new_salt)
    goal = models.CharField(max_length=32)  # a metric key of experiments.catalog.GOAL_METRICS
    secondary = models.JSONField(default=list)  # metric keys
    guardrails = models.JSONField(default=list)  # [{"metric": key, "margin": 0.05}]
    # Share of the experiment's units that stay on the shop's default serving and out of the analysis.
    holdout_share = models.FloatField(default=0.0)
    # Share of the shop's units the experiment may enrol: its slots of the shop's one layer
    # (experiments/assignment.py); [slot_start, slot_end) is reserved at the first start, freed at the stop.
    traffic_share = models.FloatField(default=1.0)
    slot_start = models.IntegerField(null=True, blank=True)
    slot_end = models.IntegerField(null=True, blank=True)
    # Units planned over all variants: tunes the always-valid test; fixed at the start.
    planned_units = models.PositiveIntegerField(default=10_000)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_experiment_name")]
        indexes = [models.Index(fields=["tenant", "status"], name="experiment_tenant_status_idx")]

    def __str__(self) -> str:
        return self.name


class Variant(TenantOwnedModel):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=32)
    # 0 is the control; the others are treatments in the order they were given.
    position = models.PositiveSmallIntegerField()
    weight = models.FloatField()
    config = models.JSONField(default=dict)  # experiments.config.VariantConfig

    class Meta(TenantOwnedModel.Meta):
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="uniq_variant_name")]


class StatsSnapshot(TenantOwnedModel):
    """One variant's cumulative sufficient statistics from the experiment's start to the end of `day`
    (to the time of computing, for the current day): one point of the effect-over-time chart."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    variant = models.CharField(max_length=32)
    day = models.DateField()
    units = models.IntegerField()
    stats = models.JSONField()  # metric key -> VariantStats.as_dict()
    computed_at = models.DateTimeField()

    class Meta(TenantOwnedModel.Meta):
        ordering = ["day", "variant"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "variant", "day"], name="uniq_experiment_snapshot"),
        ]
