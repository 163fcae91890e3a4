"""Shopify webhooks end to end: signed deliveries of documented payloads, through the Celery task, into the
catalog and events; and every way a delivery can be refused."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from recs.integrations.connections import create_connection, update_connection
from recs.models import (
    AuditLog,
    Customer,
    CustomerVersion,
    Event,
    IntegrationConnection,
    Product,
    ProductVersion,
    WebhookDelivery,
)
from tenants.context import dangerously_all_tenants
from tests.factories import TenantFactory
from tests.recs.webhooks import SHOP_DOMAIN, SHOPIFY_SECRET, body_of, payload, shopify_headers

pytestmark = pytest.mark.django_db

SHIRT = "788032119674292922"
IPOD = "632910392"
ORDER = "820982911946154508"
JOHN = "115310627314723954"


@pytest.fixture
def send(post_webhook, shopify_connection):
    def send(topic: str, data: dict, connection=None, **headers):
        body = body_of(data)
        return post_webhook("shopify", connection or shopify_connection, body, shopify_headers(topic, body, **headers))

    return send


def _product(tenant, external_id=SHIRT) -> Product:
    return Product.objects.for_tenant(tenant).get(external_id=external_id)


def _nothing_stored(tenant) -> bool:
    return not any(
        model.objects.for_tenant(tenant).exists() for model in (WebhookDelivery, Product, Customer, Event)
    )


# --- topics -------------------------------------------------------------------------------------------


def test_products_create_collapses_variants_into_the_product(send, tenant):
    response = send("products/create", payload("shopify/products_create"))

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"
    product = _product(tenant)
    assert (product.title, product.brand, product.category_path) == ("Example T-Shirt", "Acme", ["Shirts"])
    assert product.description == "Good cotton T-shirt"  # HTML stripped
    assert product.tags == ["example", "mens", "t-shirt"]
    assert product.price == Decimal("19.99")  # the lowest variant price
    assert product.stock == 125  # 75 + 50 over the tracked variants
    assert product.available and not product.deleted
    assert product.source_updated_at == dt.datetime(2022, 10, 3, 16, 55, 32, tzinfo=dt.UTC)
    variants = product.attributes["variants"]
    assert [(v["id"], v["sku"], v["price"]) for v in variants] == [
        ("642667041472713922", "example-shirt-s", "19.99"), ("757650484644203962", "example-shirt-m", "21.99"),
    ]
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert delivery.result["created"] == 1
    assert delivery.body is None  # the raw body is not kept once processed


def test_products_update_replaces_and_an_older_update_arriving_late_is_ignored(send, tenant):
    send("products/create", payload("shopify/products_create"))
    newer = payload("shopify/products_create")
    newer.update(title="Example T-Shirt v3", updated_at="2022-10-05T10:00:00-04:00", status="draft")
    older = payload("shopify/products_create")
    older.update(title="Example T-Shirt v2", updated_at="2022-10-04T10:00:00-04:00")

    assert send("products/update", newer).status_code == 200
    assert send("products/update", older).status_code == 200

    product = _product(tenant)
    assert product.title == "Example T-Shirt v3"
    assert not product.available  # a draft is not for sale
    assert product.source_updated_at == dt.datetime(2022, 10, 5, 14, 0, tzinfo=dt.UTC)
    results = [d.result for d in WebhookDelivery.objects.for_tenant(tenant).order_by("pk")]
    assert [r["updated"] for r in results] == [0, 1, 0]
    assert results[2]["stale"] == 1
    assert ProductVersion.objects.for_tenant(tenant).count() == 2


def test_products_delete_soft_deletes_and_a_late_older_update_does_not_restore(send, tenant):
    send("products/create", payload("shopify/products_create"))

    deleted = send("products/delete", payload("shopify/products_delete"), triggered_at="2022-10-06T09:00:00Z")
    late = payload("shopify/products_create")
    late["updated_at"] = "2022-10-05T10:00:00-04:00"
    send("products/update", late)

    assert deleted.status_code == 200
    assert _product(tenant).deleted
    assert ProductVersion.objects.for_tenant(tenant).count() == 2  # the deletion is part of the history


def test_products_delete_of_an_unknown_product_stores_nothing(send, tenant):
    send("products/delete", {"id": 1234567})

    assert not Product.objects.for_tenant(tenant).exists()
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.status == WebhookDelivery.Status.IGNORED
    assert delivery.result == {"ignored": "no such product"}


def test_inventory_level_updates_the_variant_stock(send, tenant):
    product = payload("shopify/products_create")
    product["variants"][0]["inventory_item_id"] = 271878346596884015
    send("products/create", product)

    send("inventory_levels/update", payload("shopify/inventory_levels_update"))  # 75 -> 6 at that location
    older = payload("shopify/inventory_levels_update")
    older.update(available=70, updated_at="2022-10-04T08:00:00-04:00")
    send("inventory_levels/update", older)

    stored = _product(tenant)
    assert stored.stock == 6 + 50
    variant = stored.attributes["variants"][0]
    assert variant["levels"] == {"24826418": {"available": 6, "at": "2022-10-04T13:00:00+00:00"}}
    assert WebhookDelivery.objects.for_tenant(tenant).order_by("pk").last().result["stale"] is True

    # A product payload newer than the level already counts every location: it supersedes the level.
    newer = payload("shopify/products_create")
    newer["variants"][0].update(inventory_item_id=271878346596884015, inventory_quantity=40)
    newer["updated_at"] = "2022-10-05T00:00:00Z"
    send("products/update", newer)
    assert _product(tenant).stock == 40 + 50


def test_inventory_level_of_an_unknown_item_is_ignored(send, tenant):
    send("inventory_levels/update", payload("shopify/inventory_levels_update"))

    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert delivery.result == {"ignored": "no product has this inventory item"}


def test_customers_create_and_update_keep_no_personal_data(send, tenant):
    send("customers/create", payload("shopify/customers_create"))
    updated = payload("shopify/customers_create")
    updated.update(tags="vip, newsletter", updated_at="2022-01-15T10:00:00-05:00")
    send("customers/update", updated)

    customer = Customer.objects.for_tenant(tenant).get(external_id="706405506930370084")
    assert customer.attributes == {
        "tags": ["vip", "newsletter"], "state": "disabled", "currency": "USD", "country": "CA",
    }
    assert CustomerVersion.objects.for_tenant(tenant).count() == 2
    stored = str(list(CustomerVersion.objects.for_tenant(tenant).values_list("snapshot", flat=True)))
    for personal in ("bob@biller.com", "Biller", "555-555-5555", "O'Connor"):
        assert personal not in str(customer.attributes) and personal not in stored


def test_orders_create_stores_one_purchase_per_line_and_orders_paid_adds_nothing(send, tenant):
    send("products/create", payload("shopify/products_create"))

    created = send("orders/create", payload("shopify/orders_create"))
    paid = send("orders/paid", payload("shopify/orders_create"))

    assert created.status_code == paid.status_code == 200
    events = list(Event.objects.for_tenant(tenant).select_related("customer", "product").order_by("event_id"))
    assert [(e.event_id, e.product.external_id, e.quantity, e.price) for e in events] == [
        (f"shopify:order:{ORDER}:141249953214522974", SHIRT, 2, Decimal("19.99")),
        (f"shopify:order:{ORDER}:866550311766439020", IPOD, 1, Decimal("199.00")),
    ]
    assert {e.event_type for e in events} == {"purchase"}
    assert {e.customer.external_id for e in events} == {JOHN}
    assert {e.ts for e in events} == {dt.datetime(2022, 1, 1, 0, 0, tzinfo=dt.UTC)}  # processed_at
    # The iPod was not in the catalog yet: it was created from the order line rather than losing the purchase.
    ipod = _product(tenant, IPOD)
    assert (ipod.title, ipod.price) == ("IPod Nano - 8GB", Decimal("199.00"))
    assert ipod.attributes == {"created_from": "order_line"}
    orders = WebhookDelivery.objects.for_tenant(tenant).filter(topic__startswith="orders/").order_by("pk")
    first, second = (d.result for d in orders)
    assert (first["events_stored"], first["products_created"]) == (2, 1)
    assert (second["events_stored"], second["events_duplicate"]) == (0, 2)


def test_a_guest_order_gets_a_customer_standing_for_the_order(send, tenant):
    order = payload("shopify/orders_create")
    order["customer"] = None

    send("orders/create", order)

    assert {e.customer.external_id for e in Event.objects.for_tenant(tenant).select_related("customer")} == {
        f"shopify-guest-order-{ORDER}"
    }


def test_a_cancelled_order_is_no_purchase(send, tenant):
    order = payload("shopify/orders_create")
    order.update(cancelled_at="2022-01-01T10:00:00-05:00", cancel_reason="customer")

    send("orders/create", order)

    assert not Event.objects.for_tenant(tenant).exists()
    assert WebhookDelivery.objects.for_tenant(tenant).get().status == WebhookDelivery.Status.IGNORED


def test_app_uninstalled_disables_the_connection_and_keeps_the_data(send, tenant, shopify_connection):
    send("products/create", payload("shopify/products_create"))

    uninstalled = send("app/uninstalled", payload("shopify/app_uninstalled"))
    later = send("products/update", payload("shopify/products_create"))

    assert uninstalled.status_code == 200
    shopify_connection.refresh_from_db()
    assert (shopify_connection.status, shopify_connection.disabled_reason) == ("disabled", "app_uninstalled")
    assert _product(tenant).title == "Example T-Shirt"
    assert later.status_code == 410
    assert WebhookDelivery.objects.for_tenant(tenant).count() == 2  # the refused delivery is not recorded
    assert AuditLog.objects.for_tenant(tenant).get().action == AuditLog.Action.CONNECTION_DISABLED


# --- refused and idempotent deliveries -----------------------------------------------------------------


def test_a_wrong_secret_is_401_and_stores_nothing(send, tenant):
    response = send("products/create", payload("shopify/products_create"), secret="not-the-secret")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert "X-Shopify-Hmac-Sha256" in response.json()["detail"]
    assert _nothing_stored(tenant)


def test_a_tampered_body_is_401_and_stores_nothing(post_webhook, shopify_connection, tenant):
    body = body_of(payload("shopify/products_create"))
    headers = shopify_headers("products/create", body)

    response = post_webhook("shopify", shopify_connection, body.replace(b"19.99", b"0.01"), headers)

    assert response.status_code == 401
    assert _nothing_stored(tenant)


@pytest.mark.parametrize(
    ("header", "status"),
    [("X-Shopify-Hmac-Sha256", 401), ("X-Shopify-Topic", 400), ("X-Shopify-Webhook-Id", 400),
     ("X-Shopify-Shop-Domain", 400)],
)
def test_a_missing_header_is_refused_and_stores_nothing(post_webhook, shopify_connection, tenant, header, status):
    body = body_of(payload("shopify/products_create"))
    headers = shopify_headers("products/create", body)
    del headers[header]

    response = post_webhook("shopify", shopify_connection, body, headers)

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert header in response.json()["detail"]
    assert _nothing_stored(tenant)


def test_header_names_are_case_insensitive(post_webhook, shopify_connection, tenant):
    body = body_of(payload("shopify/products_create"))
    headers = {name.lower(): value for name, value in shopify_headers("products/create", body).items()}

    response = post_webhook("shopify", shopify_connection, body, headers)

    assert response.status_code == 200
    assert _product(tenant).title == "Example T-Shirt"


def test_an_unknown_topic_is_200_and_recorded_as_ignored(send, tenant):
    response = send("carts/update", {"id": "eeaf0f2a", "line_items": []})

    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()
    assert (delivery.status, delivery.result) == ("ignored", {"ignored": "topic 'carts/update' is not handled"})
    assert delivery.body is None
    assert not Product.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("body", [b'{"id": 788032119674292922, "title": ', b"[1, 2]", b"\xff\xfe{}", b""])
def test_a_body_that_is_not_a_json_object_is_400(post_webhook, shopify_connection, tenant, body):
    response = post_webhook("shopify", shopify_connection, body, shopify_headers("products/create", body))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert _nothing_stored(tenant)


def test_a_redelivery_stores_nothing_twice(send, tenant):
    data = payload("shopify/orders_create")

    first = send("orders/create", data, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    again = send("orders/create", data, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["status"], again.json()["status"]) == ("queued", "duplicate")
    assert WebhookDelivery.objects.for_tenant(tenant).count() == 1
    assert Event.objects.for_tenant(tenant).count() == 2
    assert ProductVersion.objects.for_tenant(tenant).count() == 2  # the two products, each created once


def test_a_disabled_connection_answers_410_and_stores_nothing(send, tenant, shopify_connection):
    update_connection(shopify_connection, status=IntegrationConnection.Status.DISABLED)

    response = send("products/create", payload("shopify/products_create"))

    assert response.status_code == 410
    assert response["Content-Type"] == "application/problem+json"
    assert _nothing_stored(tenant)


def test_another_tenants_connection_uuid_refuses_our_signed_delivery(send, tenant, other_tenant):
    theirs = create_connection(other_tenant.pk, platform="shopify", shop_domain="other-shop.myshopify.com",
                               secret="their-own-client-secret")

    response = send("products/create", payload("shopify/products_create"), connection=theirs)

    assert response.status_code == 401
    assert _nothing_stored(tenant) and _nothing_stored(other_tenant)


def test_a_delivery_signed_for_another_shop_is_401(send, tenant, other_tenant):
    # One app, one client secret, installed in two shops: the secret alone does not say which shop.
    theirs = create_connection(other_tenant.pk, platform="shopify", shop_domain="other-shop.myshopify.com",
                               secret=SHOPIFY_SECRET)

    response = send("products/create", payload("shopify/products_create"), connection=theirs)

    assert response.status_code == 401
    assert "another shop" in response.json()["detail"]
    assert _nothing_stored(other_tenant)


@pytest.mark.parametrize("connection_id", ["0b7e3b4e-5c43-4a5e-9d7a-3f1f0c8b9a11", "not-a-uuid"])
def test_an_unknown_connection_is_404(post_webhook, tenant, connection_id):
    body = body_of(payload("shopify/products_create"))

    response = post_webhook("shopify", connection_id, body, shopify_headers("products/create", body))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("spelling", [str.upper, lambda u: u.replace("-", "")])
def test_only_the_canonical_spelling_of_the_uuid_names_the_connection(post_webhook, shopify_connection, spelling):
    """The proxy limits the rate per connection URL: another spelling of the uuid must not be a new URL."""
    body = body_of(payload("shopify/products_create"))

    response = post_webhook("shopify", spelling(str(shopify_connection.uuid)), body,
                            shopify_headers("products/create", body))

    assert response.status_code == 404


def test_a_woocommerce_connection_is_not_reachable_as_shopify(post_webhook, woo_connection, tenant):
    body = body_of(payload("shopify/products_create"))

    response = post_webhook("shopify", woo_connection, body, shopify_headers("products/create", body))

    assert response.status_code == 404


def test_only_post_is_accepted(client, shopify_connection):
    response = client.get(f"/webhooks/shopify/{shopify_connection.uuid}")

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_a_body_over_the_limit_is_413(send, tenant, settings):
    settings.RECSVC_MAX_WEBHOOK_BODY_BYTES = 1024

    response = send("products/create", payload("shopify/products_create"))

    assert response.status_code == 413
    assert _nothing_stored(tenant)


def test_a_delivery_works_with_the_database_wall_up(post_webhook, db):
    """No all-tenants context around the request: the endpoint itself must find the connection and enter
    its tenant's context, as in production."""
    with dangerously_all_tenants():
        shop = TenantFactory()
        connection = create_connection(shop.pk, platform="shopify", shop_domain=SHOP_DOMAIN, secret=SHOPIFY_SECRET)
    body = body_of(payload("shopify/orders_create"))

    response = post_webhook("shopify", connection, body, shopify_headers("orders/create", body))

    assert response.status_code == 200, response.content
    assert not Event.dangerously_unscoped.exists()  # the wall is up again after the request
    with dangerously_all_tenants():
        assert Event.objects.for_tenant(shop).count() == 2
        assert WebhookDelivery.objects.for_tenant(shop).get().status == WebhookDelivery.Status.PROCESSED
        assert IntegrationConnection.objects.for_tenant(shop).get().last_delivery_at is not None


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_processes_the_delivery_from_the_ingest_queue(celery_worker, client, tenant):
    connection = create_connection(tenant.pk, platform="shopify", shop_domain=SHOP_DOMAIN, secret=SHOPIFY_SECRET)
    body = body_of(payload("shopify/orders_create"))

    response = client.post(f"/webhooks/shopify/{connection.uuid}", data=body, content_type="application/json",
                           headers=shopify_headers("orders/create", body))

    assert response.status_code == 200 and response.json()["status"] == "queued"
    deadline = time.monotonic() + 60
    while (delivery := WebhookDelivery.objects.for_tenant(tenant).get()).status == WebhookDelivery.Status.QUEUED:
        assert time.monotonic() < deadline, "the worker never processed the delivery"
        time.sleep(0.05)
    assert delivery.status == WebhookDelivery.Status.PROCESSED, delivery.error
    assert Event.objects.for_tenant(tenant).count() == 2
