"""Webhook bodies are capped (RECSVC_MAX_WEBHOOK_BODY_BYTES, 2 MiB) and read only after the connection
is found (issue 25): a request naming no connection, or declaring more than the cap, is answered
without its body being read. The raw-socket tests declare a length and send nothing: an endpoint that
started reading would wait for bytes that never come."""

from __future__ import annotations

import http.client
import json
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from recs.models import Product, WebhookDelivery
from tests.recs.webhooks import body_of, payload, shopify_headers

THREE_MIB = 3 * 1024 * 1024


def _declare_and_wait(live_server, path: str, length: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    """POST headers declaring `length` body bytes, send none, and read the answer (5 s at most)."""
    address = urlsplit(live_server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=5)
    lines = [f"POST {path} HTTP/1.1", f"Host: {address.netloc}", "Content-Type: application/json",
             f"Content-Length: {length}", *(f"{name}: {value}" for name, value in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        response.body = response.read()
    finally:
        sock.close()
    return response


@pytest.mark.django_db
def test_a_signed_body_over_the_cap_is_413_and_stores_nothing(post_webhook, shopify_connection, tenant, settings):
    assert settings.RECSVC_MAX_WEBHOOK_BODY_BYTES == 2 * 1024 * 1024
    product = payload("shopify/products_create")
    product["body_html"] = "x" * THREE_MIB  # under the JSON API's 16 MiB, over the webhooks' cap
    body = body_of(product)

    response = post_webhook("shopify", shopify_connection, body, shopify_headers("products/create", body))

    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert str(settings.RECSVC_MAX_WEBHOOK_BODY_BYTES) in response.json()["detail"]
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()
    assert not Product.objects.for_tenant(tenant).exists()


@pytest.mark.django_db
def test_the_cap_is_a_setting(post_webhook, shopify_connection, tenant, settings):
    settings.RECSVC_MAX_WEBHOOK_BODY_BYTES = 1024
    body = body_of(payload("shopify/products_create"))
    headers = shopify_headers("products/create", body)

    assert post_webhook("shopify", shopify_connection, body, headers).status_code == 413
    settings.RECSVC_MAX_WEBHOOK_BODY_BYTES = len(body)
    assert post_webhook("shopify", shopify_connection, body, headers).status_code == 200


@pytest.mark.django_db(transaction=True)  # the live server's own connection sees the connection row
def test_a_declared_length_over_the_cap_is_413_before_any_byte_is_read(live_server, shopify_connection):
    response = _declare_and_wait(live_server, f"/webhooks/shopify/{shopify_connection.uuid}", THREE_MIB,
                                 shopify_headers("products/create", b""))

    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert json.loads(response.body)["status"] == 413


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_an_unknown_connection_is_404_before_any_byte_is_read(live_server, platform):
    response = _declare_and_wait(live_server, f"/webhooks/{platform}/{uuid.uuid4()}", 1024 * 1024, {})

    assert response.status == 404
    assert response.getheader("Content-Type") == "application/problem+json"
