from __future__ import annotations

from django.db import models

from tenants.scoping import TenantOwnedModel


class ImportJob(TenantOwnedModel):
    """A bulk back-fill from an uploaded NDJSON or CSV file, run by a Celery worker."""

    class Kind(models.TextChoices):
        EVENTS = "events"
        PRODUCTS = "products"
        CUSTOMERS = "customers"

    class Format(models.TextChoices):
        NDJSON = "ndjson"
        CSV = "csv"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    format = models.CharField(max_length=8, choices=Format.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Emptied once the upload file is deleted (recs/ingest/import_jobs.py): the shop's quota counts the rest.
    file_path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    rows_ok = models.BigIntegerField(default=0)
    rows_duplicate = models.BigIntegerField(default=0)
    rows_failed = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="the first row errors")
    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "-created_at"], name="import_recent_idx")]

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return min(1.0, self.processed_bytes / self.size_bytes) if self.size_bytes else 0.0
