"""Fixtures of the integration (webhook) tests."""

from __future__ import annotations

import pytest

from recs.integrations.connections import create_connection
from tests.recs.webhooks import SHOP_DOMAIN, SHOPIFY_SECRET, WOO_SECRET, WOO_STORE


@pytest.fixture
def shopify_connection(tenant):
    return create_connection(tenant.pk, platform="shopify", shop_domain=SHOP_DOMAIN, secret=SHOPIFY_SECRET)


@pytest.fixture
def woo_connection(tenant):
    return create_connection(tenant.pk, platform="woocommerce", shop_domain=WOO_STORE, secret=WOO_SECRET)


@pytest.fixture
def post_webhook(client, django_capture_on_commit_callbacks):
    """POST a raw body to a webhook URL; the queued task runs (eagerly) once the request's data commits,
    as it would on a worker."""

    def post(platform: str, connection, body: bytes, headers: dict, content_type: str = "application/json"):
        connection_id = getattr(connection, "uuid", connection)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/webhooks/{platform}/{connection_id}", data=body, content_type=content_type, headers=headers
            )

    return post
