"""A body accepted under one topic is refused under a topic of another kind.

The platforms sign the body only: the topic and delivery id headers are the sender's to choose. Whoever
holds one signed body (a products/update, a WooCommerce product.deleted `{"id": 25}`) could present it
again under a destructive topic with a fresh delivery id. The topic schemas (recs/integrations/schemas.py)
refuse most of these by shape; what they cannot tell apart (WooCommerce deletions carry only an id, and
shop/update carries the same shop object as app/uninstalled) is told apart here, by the body's history
on the connection.

Topics of one kind carry the same representation of a resource, and the platforms do send identical
bytes under them (orders/create and orders/paid, product.created and product.updated): those may share
a body. Every other topic is a kind of its own. A redelivery (same delivery id) is recognised by its
delivery id before its body is claimed.

What this cannot tell apart: the same bytes sent again under their own topic with a fresh delivery id.
A shop/redact body (`{shop_id, shop_domain}`) is the same bytes for every uninstall of the shop, and
Shopify sends it after each one, so a repeat cannot be refused without refusing the next genuine
erasure (docs/integrations.md, residual risks).
"""

from __future__ import annotations

import hashlib

from recs.models import IntegrationConnection
from recs.models.integrations import WebhookBodyDigest

# Actions whose payload is the resource's full representation (Shopify resource/action, WooCommerce
# resource.action). Anything else (delete, redact, uninstalled, data_request...) is a kind of its own.
_REPRESENTATION_ACTIONS = frozenset({"create", "update", "paid", "created", "updated", "restored"})


class BodyReplayed(Exception):
    """The body was accepted before and may not be taken again under this topic (the message says why)."""


def topic_kind(topic: str) -> str:
    resource, _, action = topic.replace(".", "/", 1).partition("/")
    return resource if action in _REPRESENTATION_ACTIONS else topic


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def claim_body(connection: IntegrationConnection, *, topic: str, body: bytes) -> None:
    """Record that the connection accepted `body` under `topic` (a new delivery, not a redelivery), or
    raise BodyReplayed when it was accepted before under a topic of another kind. Call it inside the
    transaction that records the delivery: the unique (connection, digest) row makes concurrent claims
    agree."""
    seen, _ = WebhookBodyDigest.objects.for_tenant(connection.tenant_id).get_or_create(
        connection=connection, sha256=body_digest(body),
        defaults={"tenant_id": connection.tenant_id, "topic": topic, "kind": topic_kind(topic)},
    )
    if seen.kind != topic_kind(topic):
        raise BodyReplayed(f"This body was already delivered as {seen.topic}; it is refused as {topic}.")
