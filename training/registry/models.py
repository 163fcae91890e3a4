from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from tenants.scoping import TenantOwnedModel

# A run occupies its tenant from queued until it ends (ready, active, failed): one at a time per kind.
IN_FLIGHT = ("queued", "training", "validating")


class ModelVersion(TenantOwnedModel):
    """One trained recommender of a tenant: the two-tower retrieval model and the DLRM ranker trained
    together (the ranker scores the retrieval model's candidates and uses its scores as a feature, so
    the two are versioned, validated and activated as one unit)."""

    class Kind(models.TextChoices):
        RECOMMENDER = "recommender"

    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        VALIDATING = "validating"
        READY = "ready"
        ACTIVE = "active"
        FAILED = "failed"
        ARCHIVED = "archived"

    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.RECOMMENDER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True, default="")
    trigger = models.CharField(max_length=16, default="api", help_text="api, schedule, cli, demo")
    hyperparameters = models.JSONField(default=dict, blank=True)
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    n_events = models.BigIntegerField(default=0)
    n_customers = models.IntegerField(default=0)
    n_items = models.IntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    # Live progress of the run: {stage, epoch, step, loss, percent}; `curve` keeps the loss history.
    progress = models.JSONField(default=dict, blank=True)
    curve = models.JSONField(default=list, blank=True)
    artifact_uri = models.CharField(max_length=500, blank=True, default="")
    feature_version = models.CharField(max_length=32, blank=True, default="")
    attempts = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"], condition=models.Q(status="active"), name="one_active_version_per_kind"
            ),
            # The database's guard for "one run at a time": two concurrent starts cannot both insert.
            models.UniqueConstraint(
                fields=["tenant", "kind"], condition=models.Q(status__in=IN_FLIGHT), name="one_run_in_flight_per_kind"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "-created_at"], name="version_recent_idx")]

    def __str__(self) -> str:
        return f"{self.kind} v{self.pk} ({self.status})"

    @property
    def percent(self) -> float:
        return float(self.progress.get("percent", 100.0 if self.status in {"ready", "active"} else 0.0))


def _default_min_new_events() -> int:
    return settings.RECSVC_RETRAIN_MIN_NEW_EVENTS


class TrainingSchedule(TenantOwnedModel):
    """A tenant's periodic retraining: every `interval_hours`, unless fewer than `min_new_events` events
    arrived after the newest trained version's data window (celery beat checks; see training/schedule.py)."""

    enabled = models.BooleanField(default=True)
    interval_hours = models.PositiveIntegerField(
        default=24, validators=[MinValueValidator(1), MaxValueValidator(24 * 90)]
    )
    min_new_events = models.PositiveIntegerField(default=_default_min_new_events)
    # What the last check decided and why ("started version 12", "skipped: 40 new events ...").
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant"], name="one_training_schedule_per_tenant")]

    def __str__(self) -> str:
        return f"every {self.interval_hours} h ({'on' if self.enabled else 'off'})"
