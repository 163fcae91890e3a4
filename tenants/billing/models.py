"""Billing tables: processed Stripe events, usage per month, and the outbox of usage reported to Stripe."""

from __future__ import annotations

from django.db import models

from tenants.billing.plans import Meter
from tenants.models import Tenant
from tenants.scoping import TenantOwnedModel


class StripeEvent(models.Model):
    """A Stripe webhook event, stored once: its id is the endpoint's idempotency key.

    Not tenant-owned (the tenant is found from the event's content); no shop data is kept here.
    """

    class Result(models.TextChoices):
        APPLIED = "applied"
        IGNORED = "ignored"  # an event type this service does not act on
        STALE = "stale"  # older than the state already applied (Stripe does not deliver in order)
        UNKNOWN_CUSTOMER = "unknown_customer"

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="when Stripe created the event")
    received_at = models.DateTimeField(auto_now_add=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.CharField(max_length=32, choices=Result.choices)

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.result})"


class UsageCounter(TenantOwnedModel):
    """A shop's usage of one meter in one month, snapshotted from the Redis counters.

    `reported` is how much of it has been handed to Stripe (rows in UsageReport): the next report sends
    only billable usage above it, under a row lock on this counter.
    """

    meter = models.CharField(max_length=32, choices=[(m.value, m.label) for m in Meter])
    period = models.DateField(help_text="first day of the month (UTC)")
    count = models.BigIntegerField(default=0)
    reported = models.BigIntegerField(default=0)
    report_seq = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "meter", "period"], name="uniq_usage_counter"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.meter} {self.period:%Y-%m}: {self.count}"


class UsageReport(TenantOwnedModel):
    """One Stripe meter event, written (committed) before it is sent: an outbox.

    A row is sent until Stripe accepts it; a re-send after a crash or lost response carries the same
    `identifier` (and idempotency key), so Stripe counts it once.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"  # refused by Stripe as invalid: needs a person (logged at ERROR)

    meter = models.CharField(max_length=32, choices=[(m.value, m.label) for m in Meter])
    period = models.DateField()
    seq = models.PositiveIntegerField()
    quantity = models.BigIntegerField()
    identifier = models.CharField(max_length=100, unique=True)
    event_name = models.CharField(max_length=100)
    stripe_customer_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField(help_text="the usage time given to Stripe (inside the period)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "meter", "period", "seq"], name="uniq_usage_report_seq"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="usage_report_status")]

    def __str__(self) -> str:
        return f"{self.identifier} x{self.quantity} ({self.status})"
