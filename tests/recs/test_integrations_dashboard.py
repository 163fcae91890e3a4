"""Store connections created from the dashboard: through the same function as POST /v1/integrations, showing
the webhook URL to paste, which then takes the store's signed deliveries. Owners only; the secret is never
shown again."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client

from recs.integrations.connections import connection_secret
from recs.models import IntegrationConnection, Product
from tests.recs.webhooks import SHOP_DOMAIN, SHOPIFY_SECRET, body_of, payload, shopify_headers

pytestmark = pytest.mark.django_db

SHOPIFY = {"platform": "shopify", "shop_domain": f"https://{SHOP_DOMAIN.upper()}/", "secret": SHOPIFY_SECRET,
           "name": "Main store"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def connections(tenant) -> list[IntegrationConnection]:
    return list(IntegrationConnection.objects.for_tenant(tenant))


def test_owner_connects_a_store_and_gets_the_webhook_url_that_takes_its_deliveries(
    owner, tenant, api, post_webhook, django_capture_on_commit_callbacks
):
    client = client_for(owner)
    assert 'id="connection-form"' in client.get("/integrations").content.decode()
    response = client.post("/integrations/new", SHOPIFY)
    [connection] = connections(tenant)
    assert response.status_code == 302
    assert response["Location"] == f"/integrations?created={connection.uuid}#created"
    # Stored as the API stores it: the canonical domain, the secret encrypted.
    assert (connection.platform, connection.shop_domain, connection.name) == ("shopify", SHOP_DOMAIN, "Main store")
    assert connection_secret(connection) == SHOPIFY_SECRET and SHOPIFY_SECRET not in connection.secret_encrypted

    page = client.get(response["Location"]).content.decode()
    [listed] = api.get("/v1/integrations").json()["results"]
    assert f'id="webhook-url" value="{listed["webhook_url"]}"' in page  # the URL the API hands out
    assert "products/create" in page and "orders/paid" in page  # the topics to subscribe
    assert SHOPIFY_SECRET not in page

    # The pasted URL works: Shopify's signed delivery to it is taken.
    body = body_of(payload("shopify/products_create"))
    with django_capture_on_commit_callbacks(execute=True):
        delivered = post_webhook("shopify", urlsplit(listed["webhook_url"]).path.split("/")[-1], body,
                                 shopify_headers("products/create", body))
    assert delivered.status_code == 200, delivered.content
    assert Product.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"platform": "woocommerce", "shop_domain": "ftp://shop.example.com"}, "Use the store&#x27;s base URL"),
        ({"shop_domain": "my-shop.example.com"}, "Use the shop&#x27;s myshopify.com domain"),
        ({"secret": "short"}, "at least 8 characters"),
        ({"secret": "long enough\x00"}, "Null characters are not allowed."),
        ({"platform": "magento"}, "Select a valid choice."),
    ],
)
def test_a_refused_connection_says_why_and_stores_nothing(owner, tenant, fields, message):
    response = client_for(owner).post("/integrations/new", {**SHOPIFY, **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert connections(tenant) == []


def test_the_same_store_twice_is_refused(owner, tenant):
    client = client_for(owner)
    assert client.post("/integrations/new", SHOPIFY).status_code == 302
    again = client.post("/integrations/new", {**SHOPIFY, "secret": "another-secret"})
    assert again.status_code == 400 and "already has a shopify connection" in again.content.decode()
    [connection] = connections(tenant)
    assert connection_secret(connection) == SHOPIFY_SECRET


def test_members_cannot_connect_a_store(member, tenant):
    client = client_for(member)
    assert 'id="connection-form"' not in client.get("/integrations").content.decode()
    assert client.post("/integrations/new", SHOPIFY).status_code == 403
    assert client.get("/integrations/new").status_code == 405
    assert connections(tenant) == []


def test_another_shops_owner_connects_only_their_own_shop(owner, outsider, tenant, other_tenant):
    client_for(owner).post("/integrations/new", SHOPIFY)
    [connection] = connections(tenant)
    outsider_client = client_for(outsider)
    page = outsider_client.get(f"/integrations?created={connection.uuid}").content.decode()
    assert str(connection.uuid) not in page and SHOP_DOMAIN not in page
    assert outsider_client.post("/integrations/new", SHOPIFY).status_code == 302  # into shop B
    assert len(connections(tenant)) == 1 and len(connections(other_tenant)) == 1


def test_the_form_needs_the_csrf_token(owner, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/integrations/new", SHOPIFY).status_code == 403
    assert connections(tenant) == []
