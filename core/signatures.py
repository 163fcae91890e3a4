"""Webhook signatures. Shopify (`X-Shopify-Hmac-Sha256`) and WooCommerce (`X-WC-Webhook-Signature`) both
send base64(HMAC-SHA256(raw body, secret)); the comparison is constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac


def signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def is_valid_signature(body: bytes, secret: str, header_value: str | None) -> bool:
    if not header_value or not secret:
        return False
    expected = signature(body, secret).encode()
    return hmac.compare_digest(expected, header_value.strip().encode())
