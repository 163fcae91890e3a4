"""Fixtures of the recs tests: a trained shop (recommendation endpoints), integration (webhook) set-ups."""

from __future__ import annotations

import pytest

from recs.integrations.connections import create_connection
from tests.recs.webhooks import SHOP_DOMAIN, SHOPIFY_SECRET, WOO_SECRET, WOO_STORE
from tests.serving.trained import forget_served_state, load_shop, train_active_version


@pytest.fixture
def trained(tenant, settings, tmp_path):
    """Shop A with the tiny synthetic catalog and an active version trained on it; answers cached 60 s."""
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    settings.RECSVC_RECS_CACHE_SECONDS = 60
    load_shop(tenant)
    yield train_active_version(tenant)
    forget_served_state()


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


@pytest.fixture
def import_dir(settings, tmp_path):
    """Uploads land in the test's own folder."""
    settings.RECSVC_IMPORT_DIR = tmp_path
    return tmp_path
