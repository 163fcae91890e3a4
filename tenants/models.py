from __future__ import annotations

from django.conf import settings
from django.db import models


class Tenant(models.Model):
    """A shop. Every row of shop data carries its id (`tenant_id`)."""

    class Plan(models.TextChoices):
        FREE = "free"
        GROWTH = "growth"
        SCALE = "scale"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.FREE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Billing: a mirror of the shop's Stripe subscription, kept in step by tenants.billing.webhooks.
    stripe_customer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, default="")
    subscription_status = models.CharField(max_length=32, blank=True, default="")  # Stripe's word, "" = none
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    # When the first unpaid invoice failed; the grace period (RECSVC_BILLING_GRACE_DAYS) runs from here.
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    # `created` of the newest Stripe event applied to the subscription / payment fields: Stripe does not
    # deliver in order, and an older event must never overwrite a newer state.
    subscription_event_at = models.DateTimeField(null=True, blank=True)
    payment_event_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id} ({self.role})"


class ApiKey(models.Model):
    """An API key. Only a SHA-256 of the secret is kept; the full key is shown once at creation.

    The public `prefix` (``rsk_<id>``, ``rpk_<id>`` for a publishable key) is what a leaked key is
    recognised and looked up by.

    A publishable key is meant to be seen: it sits in a shop's pages (the storefront snippet). It has
    that one scope, may only ask for recommendations and send single events (tenants.storefront), and
    only from a browser on one of its `allowed_origins`.
    """

    class Scope(models.TextChoices):
        INGEST = "ingest"
        RECOMMEND = "recommend"
        ADMIN = "admin"
        PUBLISHABLE = "publishable"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    # A publishable key's origins ("https://shop.example"), normalised by tenants.storefront.clean_origin.
    allowed_origins = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_publishable(self) -> bool:
        return self.Scope.PUBLISHABLE in self.scopes

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or self.Scope.ADMIN in self.scopes
