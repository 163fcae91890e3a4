"""Webhook endpoints: /webhooks/shopify/<connection uuid> and /webhooks/woocommerce/<connection uuid>.

No API key: the signature is the authentication (HMAC-SHA256 of the raw body with the connection's
secret). The answer comes fast (Shopify allows 5 seconds): verify, record the delivery, queue the work.
The signature covers the body only, not the topic or delivery id headers: a body is recorded only when
it fits its topic (recs/integrations/schemas.py) and was not accepted before under a topic of another
kind (recs/integrations/replay.py).

Answers (problem+json for errors), in the order they are decided:
- 404 no such connection (or one of the other platform), before any byte of the body is read;
- 413 the body is larger than RECSVC_MAX_WEBHOOK_BODY_BYTES (a declared length over it is refused
  before reading; otherwise no more than the cap and one byte is read);
- 401 the signature is missing or wrong, or the delivery is signed for another shop: nothing stored;
- 400 a required header is missing, or the body is not a JSON object;
- 410 the connection does not take the topic: it is disabled (by the merchant, or by Shopify's
  app/uninstalled): "gone" on purpose, so the platform stops retrying, which a 404 for a typo'd URL
  would not say. After app/uninstalled the mandatory privacy topics are still accepted, since
  shop/redact comes 48 hours after an uninstall; a connection disabled by hand takes nothing. The
  signature is checked first, so only the platform itself learns that a connection is disabled;
- 422 the payload is not its topic's (a body signed for products/update sent as shop/redact), and 401
  when a privacy or uninstall payload names another shop;
- 409 the same body was accepted before under a topic of another kind;
- 200 recorded and queued; 200 also for a redelivery (nothing stored twice), for a topic we do not
  handle (recorded as ignored) and for WooCommerce's unsigned creation ping (nothing stored).

The 422 and 409 refusals store nothing and are logged. A platform retries a refused delivery, which
cannot bring a forged one into effect (the same refusal answers each retry); a genuine delivery
refused this way would be a payload its platform documents differently, and the warning says which.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.signatures import is_valid_signature
from recs.integrations import mapping
from recs.integrations.connections import connection_secret, find_connection_for_webhook, store_host
from recs.integrations.crypto import SecretUnreadable
from recs.integrations.processing import record_delivery, takes_topic
from recs.integrations.replay import BodyReplayed
from recs.integrations.schemas import check_payload
from recs.integrations.tasks import enqueue_delivery
from recs.models import IntegrationConnection
from tenants.context import tenant_context

log = logging.getLogger(__name__)
Platform = IntegrationConnection.Platform
PROBLEM_CONTENT_TYPE = "application/problem+json"
_TITLES = {400: "Invalid request", 401: "Not authenticated", 404: "Not found", 405: "Method not allowed",
           409: "Conflict", 410: "Gone", 413: "Payload too large", 422: "Unprocessable content",
           503: "Service unavailable"}


@dataclass(frozen=True)
class _Headers:
    signature: str
    topic: str
    delivery_id: str


_HEADERS = {
    Platform.SHOPIFY: _Headers("X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Webhook-Id"),
    Platform.WOOCOMMERCE: _Headers("X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID"),
}


def _problem(status: int, detail: str, code: str) -> JsonResponse:
    body = {"type": f"/problems/{code}", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it exceeds `limit`: a declared length over it is refused before
    reading, and no more than `limit` + 1 bytes are read whatever the length says."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def _is_woocommerce_ping(request: HttpRequest, body: bytes) -> bool:
    """WooCommerce's test delivery when a webhook is saved: an unsigned form body `webhook_id=<id>`."""
    if len(body) > 100 or not body.startswith(b"webhook_id="):
        return False
    form = parse_qs(body.decode("ascii", "replace"), keep_blank_values=True)
    return set(form) == {"webhook_id"} and len(form["webhook_id"]) == 1 and form["webhook_id"][0].isdigit()


def _source_mismatch(connection: IntegrationConnection, request: HttpRequest) -> str | None:
    """The delivery is signed, but for another store (one app secret can serve many shops)."""
    if connection.platform == Platform.SHOPIFY:
        domain = request.headers.get("X-Shopify-Shop-Domain", "").strip().lower()
        if not domain:
            return "missing"
        return None if domain == connection.shop_domain else "other"
    source = request.headers.get("X-WC-Webhook-Source", "").strip()
    if not source:
        return None  # not every WooCommerce version sends it
    return None if urlsplit(source).netloc.lower() == store_host(connection) else "other"


def _receive(request: HttpRequest, platform: str, connection_id: str) -> JsonResponse:
    if request.method != "POST":
        response = _problem(405, "Webhooks are delivered with POST.", "method_not_allowed")
        response["Allow"] = "POST"
        return response
    # The connection first: a request naming none costs one indexed read, not a read of its body.
    connection = find_connection_for_webhook(platform, connection_id)
    if connection is None:
        return _problem(404, "No such connection.", "not_found")
    limit = settings.RECSVC_MAX_WEBHOOK_BODY_BYTES
    body = _read_body(request, limit)
    if body is None:
        return _problem(413, f"The body exceeds {limit} bytes.", "payload_too_large")
    names = _HEADERS[platform]
    signature = request.headers.get(names.signature)

    if platform == Platform.WOOCOMMERCE and not signature and _is_woocommerce_ping(request, body):
        if not (connection.is_active and connection.tenant.is_active):
            return _problem(410, "This connection is disabled.", "gone")
        return JsonResponse({"status": "ok"})

    try:
        secret = connection_secret(connection)
    except SecretUnreadable:
        log.error("connection %s: the stored webhook secret cannot be decrypted (encryption key changed?)",
                  connection.uuid)
        return _problem(503, "The delivery cannot be verified right now; retry later.", "unavailable")
    if not is_valid_signature(body, secret, signature):
        return _problem(401, f"Missing or invalid {names.signature} signature.", "invalid_signature")

    topic = request.headers.get(names.topic, "").strip()
    delivery_id = request.headers.get(names.delivery_id, "").strip()
    missing = [name for name, value in ((names.topic, topic), (names.delivery_id, delivery_id)) if not value]
    if missing:
        return _problem(400, f"Missing header(s): {', '.join(missing)}.", "missing_header")
    if len(topic) > 100 or len(delivery_id) > 255:
        return _problem(400, "Topic or delivery id header too long.", "invalid_header")
    if not takes_topic(connection, topic):
        return _problem(410, "This connection is disabled.", "gone")
    mismatch = _source_mismatch(connection, request)
    if mismatch == "missing":
        return _problem(400, "Missing header(s): X-Shopify-Shop-Domain.", "missing_header")
    if mismatch:
        return _problem(401, "The delivery is signed for another shop.", "invalid_signature")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _problem(400, "The body is not valid JSON.", "malformed_json")
    if not isinstance(payload, dict):
        return _problem(400, "The body must be a JSON object.", "malformed_json")
    refusal = check_payload(connection, topic, payload)
    if refusal is not None:
        log.warning("connection %s: a signed %s delivery refused: %s", connection.uuid, topic, refusal.detail)
        code = "invalid_signature" if refusal.status == 401 else "invalid_payload"
        return _problem(refusal.status, refusal.detail, code)

    triggered_at = None
    if platform == Platform.SHOPIFY:
        triggered_at = mapping.timestamp(request.headers.get("X-Shopify-Triggered-At", "").strip())
    try:
        with tenant_context(connection.tenant_id):
            recorded = record_delivery(
                connection, delivery_id=delivery_id, topic=topic, body=body, triggered_at=triggered_at,
                enqueue=enqueue_delivery,
            )
    except BodyReplayed as replayed:
        log.warning("connection %s: a signed %s delivery refused: %s", connection.uuid, topic, replayed)
        return _problem(409, str(replayed), "replayed_body")
    status = "duplicate" if not recorded.created else recorded.delivery.status
    return JsonResponse({"status": status, "delivery_id": delivery_id})


@csrf_exempt
def shopify_webhook(request: HttpRequest, connection_id: str) -> JsonResponse:
    return _receive(request, Platform.SHOPIFY, connection_id)


@csrf_exempt
def woocommerce_webhook(request: HttpRequest, connection_id: str) -> JsonResponse:
    return _receive(request, Platform.WOOCOMMERCE, connection_id)
