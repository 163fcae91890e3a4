"""/v1/integrations: managing store connections. The secret is write-only and encrypted at rest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from config.env import ImproperlyConfiguredEnv, derive_fernet_key, env_fernet_keys
from recs.integrations.connections import connection_secret, create_connection
from recs.integrations.crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from recs.models import IntegrationConnection, Product, WebhookDelivery
from tests.recs.webhooks import SHOP_DOMAIN, body_of, payload, shopify_headers

pytestmark = pytest.mark.django_db

SECRET = "shpss_0123456789abcdef0123456789abcdef"


def _create(api, **overrides):
    body = {"platform": "shopify", "shop_domain": "https://Jsmith.myshopify.com/", "secret": SECRET, **overrides}
    return api.post("/v1/integrations", body, format="json")


def _deliver(post_webhook, connection, *, secret=SECRET):
    body = body_of(payload("shopify/products_create"))
    return post_webhook("shopify", connection, body, shopify_headers("products/create", body, secret=secret))


def test_create_returns_the_webhook_url_and_never_the_secret(api, tenant):
    response = _create(api, name="Main store")

    assert response.status_code == 201, response.content
    data = response.json()
    connection = IntegrationConnection.objects.for_tenant(tenant).get()
    assert data["id"] == str(connection.uuid)
    assert (data["platform"], data["shop_domain"], data["name"], data["status"]) == (
        "shopify", SHOP_DOMAIN, "Main store", "active",
    )
    assert data["webhook_url"] == f"http://testserver/webhooks/shopify/{connection.uuid}"
    assert "secret" not in data and "secret_encrypted" not in data
    # Encrypted at rest: the stored value is a Fernet token that only the configured key opens.
    assert SECRET not in connection.secret_encrypted
    assert connection_secret(connection) == SECRET
    for response in (api.get("/v1/integrations"), api.get(f"/v1/integrations/{connection.uuid}")):
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
        assert connection.secret_encrypted not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shop_domain": "jsmith.example.com"}, "shop_domain"),
        ({"platform": "woocommerce", "shop_domain": "example.com"}, "shop_domain"),
        ({"platform": "woocommerce", "shop_domain": "ftp://example.com"}, "shop_domain"),
        ({"platform": "magento"}, "platform"),
        ({"secret": "short"}, "secret"),
        ({"secret": None}, "secret"),
        ({"status": "active", "webhook": "x"}, "webhook"),
        ({"name": "Main\x00store"}, "name"),
    ],
)
def test_invalid_connections_are_400_and_store_nothing(api, tenant, body, field):
    response = _create(api, **body)

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not IntegrationConnection.objects.for_tenant(tenant).exists()


def test_woocommerce_store_urls_are_normalised(api, tenant):
    response = _create(api, platform="woocommerce", shop_domain="https://Shop.Example.com/store/")

    assert response.status_code == 201
    assert response.json()["shop_domain"] == "https://shop.example.com/store"
    assert response.json()["webhook_url"].endswith(f"/webhooks/woocommerce/{response.json()['id']}")


def test_the_same_store_twice_is_409_but_another_tenant_may_connect_it(api, outsider_api, tenant):
    assert _create(api).status_code == 201

    again = _create(api, secret="another-secret-value")
    theirs = _create(outsider_api)

    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert theirs.status_code == 201


def test_patch_rotates_the_secret_and_disables(api, tenant, post_webhook):
    connection_id = _create(api).json()["id"]
    rotated = "shpss_rotated_fedcba9876543210fedcba98"

    response = api.patch(f"/v1/integrations/{connection_id}", {"secret": rotated, "name": "EU"}, format="json")

    assert response.status_code == 200
    assert rotated not in response.content.decode() and "secret" not in response.json()
    assert _deliver(post_webhook, connection_id).status_code == 401  # the old secret no longer verifies
    assert _deliver(post_webhook, connection_id, secret=rotated).status_code == 200

    disabled = api.patch(f"/v1/integrations/{connection_id}", {"status": "disabled"}, format="json")
    assert (disabled.json()["status"], disabled.json()["disabled_reason"]) == ("disabled", "disabled_by_user")
    assert _deliver(post_webhook, connection_id, secret=rotated).status_code == 410

    enabled = api.patch(f"/v1/integrations/{connection_id}", {"status": "active"}, format="json")
    assert (enabled.json()["status"], enabled.json()["disabled_reason"]) == ("active", "")


def test_patch_cannot_move_a_connection_to_another_store(api, tenant):
    connection_id = _create(api).json()["id"]

    response = api.patch(
        f"/v1/integrations/{connection_id}", {"shop_domain": "elsewhere.myshopify.com", "platform": "woocommerce"},
        format="json",
    )

    assert response.status_code == 200
    assert (response.json()["shop_domain"], response.json()["platform"]) == (SHOP_DOMAIN, "shopify")


def test_deliveries_lists_what_each_delivery_did_without_its_body(api, tenant, post_webhook):
    connection_id = _create(api).json()["id"]
    _deliver(post_webhook, connection_id)
    _deliver(post_webhook, connection_id, secret="wrong")  # refused: not recorded

    response = api.get(f"/v1/integrations/{connection_id}/deliveries")

    assert response.status_code == 200
    [delivery] = response.json()
    assert (delivery["topic"], delivery["status"], delivery["result"]["created"]) == ("products/create", "processed", 1)
    assert "body" not in delivery


def test_delete_stops_the_webhooks_and_keeps_the_data(api, tenant, post_webhook):
    connection_id = _create(api).json()["id"]
    _deliver(post_webhook, connection_id)

    assert api.delete(f"/v1/integrations/{connection_id}").status_code == 204

    assert _deliver(post_webhook, connection_id).status_code == 404
    assert Product.objects.for_tenant(tenant).count() == 1
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()


def test_an_outsider_key_gets_404_for_everything(api, outsider_api, tenant, other_tenant):
    connection_id = _create(api, name="A's store").json()["id"]
    url = f"/v1/integrations/{connection_id}"

    responses = [
        outsider_api.get(url), outsider_api.patch(url, {"status": "disabled"}, format="json"),
        outsider_api.delete(url), outsider_api.get(f"{url}/deliveries"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert outsider_api.get("/v1/integrations").json()["results"] == []
    assert IntegrationConnection.objects.for_tenant(tenant).get().status == "active"


def test_a_key_without_admin_scope_is_403(ingest_api, tenant):
    assert ingest_api.get("/v1/integrations").status_code == 403


# --- encryption at rest -------------------------------------------------------------------------------


def test_a_rotated_key_still_reads_old_secrets(settings):
    old, new = settings.RECSVC_FIELD_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    token = encrypt_secret("s3cret-value")

    settings.RECSVC_FIELD_ENCRYPTION_KEYS = [new, old]
    assert decrypt_secret(token) == "s3cret-value"
    assert Fernet(new.encode()).decrypt(encrypt_secret("fresh").encode()) == b"fresh"  # the first key encrypts

    settings.RECSVC_FIELD_ENCRYPTION_KEYS = [new]
    with pytest.raises(SecretUnreadable):
        decrypt_secret(token)


def test_a_secret_the_keys_cannot_read_is_503_not_401(settings, tenant, post_webhook):
    connection = create_connection(tenant.pk, platform="shopify", shop_domain=SHOP_DOMAIN, secret=SECRET)
    settings.RECSVC_FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    response = _deliver(post_webhook, connection)

    assert response.status_code == 503  # our fault: the platform should retry once the key is back
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()


def test_the_encryption_key_setting_is_checked_at_start_up(monkeypatch):
    default = derive_fernet_key("some django secret", purpose="recsvc field encryption v1")
    assert default != derive_fernet_key("another django secret", purpose="recsvc field encryption v1")
    assert env_fernet_keys("RECSVC_TEST_KEY", default=default) == [default]

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("RECSVC_TEST_KEY", f"{key}, {default}")
    assert env_fernet_keys("RECSVC_TEST_KEY", default=default) == [key, default]

    monkeypatch.setenv("RECSVC_TEST_KEY", "not-a-fernet-key")
    with pytest.raises(ImproperlyConfiguredEnv, match="RECSVC_TEST_KEY"):
        env_fernet_keys("RECSVC_TEST_KEY", default=default)


# --- dashboard page -----------------------------------------------------------------------------------


def test_the_dashboard_lists_connections_and_deliveries_without_secrets(owner, outsider, tenant, post_webhook):
    connection = create_connection(tenant.pk, platform="shopify", shop_domain=SHOP_DOMAIN, secret=SECRET,
                                   name="Main store")
    _deliver(post_webhook, connection)
    browser = Client()
    browser.force_login(owner)

    page = browser.get("/integrations")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Main store" in html and f"/webhooks/shopify/{connection.uuid}" in html
    assert "products/create" in html and "Processed" in html
    assert SECRET not in html and connection.secret_encrypted not in html

    stranger = Client()
    stranger.force_login(outsider)
    theirs = stranger.get("/integrations").content.decode()
    assert "Main store" not in theirs and str(connection.uuid) not in theirs
