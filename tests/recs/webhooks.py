"""Helpers for the webhook tests: documented payloads (tests/recs/fixtures), signatures computed here
independently of the code under test, and headers as the platforms send them."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from functools import cache
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
SHOPIFY_SECRET = "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"
SHOP_DOMAIN = "jsmith.myshopify.com"
WOO_SECRET = "wc-webhook-secret-4f9a1c"
WOO_STORE = "https://example.com"


@cache
def _load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def payload(name: str) -> dict:
    """A fresh copy of a fixture (e.g. 'shopify/products_create'), free to modify."""
    return copy.deepcopy(_load(name))


def body_of(data: dict) -> bytes:
    return json.dumps(data).encode()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(topic: str, body: bytes, *, secret: str = SHOPIFY_SECRET, webhook_id: str | None = None,
                    domain: str = SHOP_DOMAIN, triggered_at: str | None = None) -> dict[str, str]:
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-API-Version": "2025-07",
    }
    if triggered_at:
        headers["X-Shopify-Triggered-At"] = triggered_at
    return headers


def woo_headers(topic: str, body: bytes, *, secret: str = WOO_SECRET, delivery_id: str | None = None,
                source: str = WOO_STORE + "/") -> dict[str, str]:
    resource, _, event = topic.partition(".")
    return {
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "142",
        "X-WC-Webhook-Delivery-ID": delivery_id or uuid.uuid4().hex,
    }
