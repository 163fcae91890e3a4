"""Store connections (Shopify, WooCommerce), their webhook deliveries, and the compliance records.

A connection's webhook URL names it by an unguessable uuid; the shop's webhook secret, which signs
every delivery, is kept encrypted (recs/integrations/crypto.py). A delivery row is written before its
work is queued, so a redelivery (same platform delivery id) is recognised and stores nothing twice.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scoping import TenantOwnedModel


class IntegrationConnection(TenantOwnedModel):
    class Platform(models.TextChoices):
        SHOPIFY = "shopify"
        WOOCOMMERCE = "woocommerce"

    class Status(models.TextChoices):
        ACTIVE = "active"
        DISABLED = "disabled"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    platform = models.CharField(max_length=16, choices=Platform.choices)
    name = models.CharField(max_length=100, blank=True, default="")
    # Shopify: the shop's myshopify.com domain. WooCommerce: the store's base URL.
    shop_domain = models.CharField(max_length=255)
    # Fernet token of the webhook secret (Shopify: the app's client secret); never returned by the API.
    secret_encrypted = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    disabled_reason = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "platform", "shop_domain"], name="uniq_connection_shop"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.shop_domain}"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class WebhookDelivery(TenantOwnedModel):
    """One webhook delivery, recorded before its work is queued. The body is dropped once processed: it
    carries personal data (emails, addresses) the service does not otherwise keep."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    connection = models.ForeignKey(IntegrationConnection, on_delete=models.CASCADE, related_name="+")
    # X-Shopify-Webhook-Id / X-WC-Webhook-Delivery-ID.
    delivery_id = models.CharField(max_length=255)
    topic = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # The raw, verified request body (bytes: PostgreSQL jsonb could not hold every valid JSON string).
    body = models.BinaryField(null=True, blank=True)
    triggered_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "connection", "delivery_id"], name="uniq_webhook_delivery"),
        ]
        indexes = [models.Index(fields=["tenant", "connection", "-received_at"], name="delivery_recent_idx")]


class WebhookBodyDigest(TenantOwnedModel):
    """The SHA-256 of each body a connection accepted, with the topic it came under.

    A platform's signature covers the body only; the topic header is the sender's to choose. One row per
    (connection, body) lets a body accepted under one topic be refused under another of a different kind
    (recs/integrations/replay.py). Kept when shop/redact erases the deliveries: a digest holds no
    readable data, and without it an old body could be replayed under a new topic."""

    connection = models.ForeignKey(IntegrationConnection, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    # The topic it was first accepted under, and that topic's kind (topics sharing one representation).
    topic = models.CharField(max_length=100)
    kind = models.CharField(max_length=100)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "connection", "sha256"], name="uniq_webhook_body_digest"),
        ]


class DataExport(TenantOwnedModel):
    """Everything held about one customer, answering a data subject request (Shopify customers/data_request).

    Kept in the database, under row-level security like the data it copies, and erased with it (a later
    customers/redact or shop/redact deletes the export too)."""

    connection = models.ForeignKey(
        IntegrationConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=128, help_text="the customer's external id")
    request_id = models.CharField(max_length=64, blank=True, default="")
    content = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "subject"], name="export_subject_idx")]


class AuditLog(TenantOwnedModel):
    """What was done to whose data, and when: every compliance action writes one row. Details hold counts
    and ids, never the personal data itself."""

    class Action(models.TextChoices):
        DATA_EXPORTED = "customer_data_exported"
        CUSTOMER_REDACTED = "customer_redacted"
        CUSTOMER_DELETED = "customer_deleted"
        SHOP_REDACTED = "shop_redacted"
        CONNECTION_DISABLED = "connection_disabled"

    action = models.CharField(max_length=32, choices=Action.choices)
    subject = models.CharField(max_length=255)
    at = models.DateTimeField(auto_now_add=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta(TenantOwnedModel.Meta):
        indexes = [models.Index(fields=["tenant", "-at"], name="audit_recent_idx")]
