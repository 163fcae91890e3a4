"""Recording a verified delivery (once) and processing it later in a worker.

Recording is what the webhook request does before answering: one row, unique per (connection,
platform delivery id), written in the tenant's context, and the processing task queued when that row
commits; the body's digest is claimed in the same transaction (recs/integrations/replay.py).
Processing runs the topic's handler inside the tenant's context; the handler's writes and the
delivery's new status commit together, so a crash leaves the delivery queued for a retry, and a retry
of a processed delivery does nothing. What the webhook request would refuse by now (the connection was
disabled meanwhile, or a delivery recorded before the topic schemas existed does not fit its topic) is
recorded as ignored instead of done.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from recs.integrations import shopify, woocommerce
from recs.integrations.base import Delivery, Handler, Ignored
from recs.integrations.connections import DISABLED_BY_UNINSTALL, touch_last_delivery
from recs.integrations.replay import claim_body
from recs.integrations.schemas import check_payload
from recs.models import IntegrationConnection, WebhookDelivery

log = logging.getLogger(__name__)
Platform = IntegrationConnection.Platform
_HANDLERS: dict[str, dict[str, Handler]] = {
    Platform.SHOPIFY: shopify.HANDLERS, Platform.WOOCOMMERCE: woocommerce.HANDLERS,
}
_COMPLIANCE: dict[str, frozenset[str]] = {
    Platform.SHOPIFY: shopify.COMPLIANCE_TOPICS, Platform.WOOCOMMERCE: woocommerce.COMPLIANCE_TOPICS,
}


def handler_for(platform: str, topic: str) -> Handler | None:
    return _HANDLERS.get(platform, {}).get(topic)


def is_compliance_topic(platform: str, topic: str) -> bool:
    """Mandatory privacy topics, accepted even on a disabled connection (Shopify sends shop/redact 48
    hours after the app is uninstalled, and the law requires acting on it)."""
    return topic in _COMPLIANCE.get(platform, frozenset())


def takes_topic(connection: IntegrationConnection, topic: str) -> bool:
    """Whether the connection takes a delivery of `topic` now.

    An active connection of an active shop takes every topic; of an inactive shop, only the privacy
    topics. A disabled connection takes nothing, except after Shopify's app/uninstalled: then the
    privacy topics still come (shop/redact 48 hours after the uninstall) and the law requires acting on
    them. A connection the merchant disabled by hand erases nothing.
    """
    if connection.is_active and connection.tenant.is_active:
        return True
    if not is_compliance_topic(connection.platform, topic):
        return False
    return connection.is_active or connection.disabled_reason == DISABLED_BY_UNINSTALL


@dataclass(frozen=True)
class Recorded:
    delivery: WebhookDelivery
    created: bool


def record_delivery(
    connection: IntegrationConnection, *, delivery_id: str, topic: str, body: bytes,
    triggered_at: dt.datetime | None, enqueue: Callable[[int, int], None],
) -> Recorded:
    """Store a verified delivery once and queue its processing after commit; a redelivery (same delivery
    id) stores nothing and queues nothing. Raises replay.BodyReplayed (nothing stored) when the body was
    accepted before and may not be taken again under this topic. The caller has entered the connection's
    tenant context and checked the payload against its topic (schemas.check_payload)."""
    known = handler_for(connection.platform, topic) is not None
    deliveries = WebhookDelivery.objects.for_tenant(connection.tenant_id)
    with transaction.atomic():
        redelivered = deliveries.filter(connection=connection, delivery_id=delivery_id).first()
        if redelivered is not None:
            return Recorded(redelivered, False)
        # Unknown topics too: a shop/update body, ignored, must not come back as app/uninstalled.
        claim_body(connection, topic=topic, body=body)
        delivery, created = deliveries.get_or_create(
            connection=connection, delivery_id=delivery_id,
            defaults={
                "tenant_id": connection.tenant_id, "topic": topic, "triggered_at": triggered_at,
                # An unknown topic is answered 200 and kept only as a record: the platforms treat any
                # other answer as a failure, retry it and (WooCommerce, after 5) disable the webhook,
                # while a topic the merchant subscribed by mistake carries nothing we could store.
                "status": WebhookDelivery.Status.QUEUED if known else WebhookDelivery.Status.IGNORED,
                "body": body if known else None,
                "result": {} if known else {"ignored": f"topic '{topic}' is not handled"},
                "processed_at": None if known else timezone.now(),
            },
        )
        if created:
            touch_last_delivery(connection)
            if known:
                tenant_id, pk = connection.tenant_id, delivery.pk
                transaction.on_commit(lambda: enqueue(tenant_id, pk))
    return Recorded(delivery, created)


def process_delivery(tenant_id: int, delivery_pk: int) -> str:
    """Run a recorded delivery's handler (the caller has entered the tenant's context)."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.for_tenant(tenant_id).select_for_update(of=("self", "connection"))
            .select_related("connection__tenant").filter(pk=delivery_pk).first()
        )
        if delivery is None or delivery.status != WebhookDelivery.Status.QUEUED:
            return "skipped"
        handler = handler_for(delivery.connection.platform, delivery.topic)
        context = Delivery(tenant_id, delivery.connection, delivery.pk, delivery.topic, delivery.triggered_at)
        status, result, error = WebhookDelivery.Status.PROCESSED, {}, ""
        try:
            payload = json.loads(bytes(delivery.body or b"{}"))
            _check_still_taken(delivery.connection, delivery.topic, payload)
            with transaction.atomic():  # a failing handler leaves nothing half-written
                result = handler(context, payload) if handler else {"ignored": "topic no longer handled"}
        except Ignored as reason:
            status, result = WebhookDelivery.Status.IGNORED, {"ignored": str(reason)}
        except Exception as exc:  # recorded on the delivery for the merchant, with the traceback in the log
            log.exception("webhook delivery %s (%s) failed", delivery.pk, delivery.topic)
            status, error = WebhookDelivery.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        delivery.status, delivery.result, delivery.error = status, result, error
        delivery.processed_at = timezone.now()
        # The body holds personal data: it is kept only while it may still be needed (failed: to retry).
        fields = ["status", "result", "error", "processed_at"]
        if status != WebhookDelivery.Status.FAILED:
            delivery.body = None
            fields.append("body")
        # shop/redact may have deleted other deliveries but keeps this one; save only the changed fields.
        WebhookDelivery.objects.for_tenant(tenant_id).filter(pk=delivery.pk).update(
            **{name: getattr(delivery, name) for name in fields}
        )
    return status


def _check_still_taken(connection: IntegrationConnection, topic: str, payload: object) -> None:
    if not takes_topic(connection, topic):
        raise Ignored(f"the connection no longer takes {topic} deliveries")
    if not isinstance(payload, dict):
        raise Ignored("the body is not a JSON object")
    refusal = check_payload(connection, topic, payload)
    if refusal is not None:
        raise Ignored(refusal.detail)
