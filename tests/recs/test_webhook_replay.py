"""Signed bodies replayed under another topic (issue 25): the signature covers the body only, so the topic
and the delivery id are the sender's to choose. Each test sends the attack with the connection's real
secret and a fresh delivery id, and checks that nothing was erased, disabled or stored."""

from __future__ import annotations

import pytest

from recs.integrations.connections import update_connection
from recs.integrations.processing import process_delivery
from recs.models import AuditLog, Customer, Event, IntegrationConnection, Product, WebhookDelivery
from tenants.context import tenant_context
from tests.recs.webhooks import body_of, payload, shopify_headers, woo_headers

pytestmark = pytest.mark.django_db

SUBJECT = "191167"  # the customer of Shopify's sample compliance payloads


@pytest.fixture
def shopify(post_webhook, shopify_connection):
    def send(topic: str, body: bytes, **headers):
        return post_webhook("shopify", shopify_connection, body, shopify_headers(topic, body, **headers))

    return send


@pytest.fixture
def woo(post_webhook, woo_connection):
    def send(topic: str, body: bytes, **headers):
        return post_webhook("woocommerce", woo_connection, body, woo_headers(topic, body, **headers))

    return send


@pytest.fixture
def shop(shopify, tenant):
    """Two products, the compliance samples' customer and their order: what an erasure would remove."""
    shopify("products/create", body_of(payload("shopify/products_create")))
    second = payload("shopify/products_create")
    second.update(id=632910392, title="IPod Nano")
    shopify("products/create", body_of(second))
    customer = payload("shopify/customers_create")
    customer["id"] = int(SUBJECT)
    shopify("customers/create", body_of(customer))
    order = payload("shopify/orders_create")
    order["customer"]["id"] = int(SUBJECT)
    shopify("orders/create", body_of(order))
    assert (Product.objects.for_tenant(tenant).count(), Event.objects.for_tenant(tenant).count()) == (2, 2)
    return tenant


def _intact(tenant) -> bool:
    return (
        Product.objects.for_tenant(tenant).filter(deleted=False).count() == 2
        and Customer.objects.for_tenant(tenant).filter(external_id=SUBJECT).exists()
        and Event.objects.for_tenant(tenant).count() == 2
        and not AuditLog.objects.for_tenant(tenant).exists()
    )


def _assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"


# --- Shopify: a body signed for one topic, replayed under a destructive one ----------------------------


@pytest.mark.parametrize("topic", ["shop/redact", "customers/redact", "app/uninstalled", "products/delete"])
def test_a_products_update_body_replayed_under_a_destructive_topic_is_refused(shop, shopify, shopify_connection,
                                                                              topic):
    body = body_of(payload("shopify/products_create"))
    assert shopify("products/update", body).status_code == 200
    deliveries = WebhookDelivery.objects.for_tenant(shop).count()

    response = shopify(topic, body)  # the same signed bytes, a fresh webhook id

    _assert_refused(response, 422)
    assert _intact(shop)
    assert WebhookDelivery.objects.for_tenant(shop).count() == deliveries  # the replay is not recorded
    shopify_connection.refresh_from_db()
    assert shopify_connection.is_active


def test_a_body_never_delivered_before_is_refused_by_its_shape_alone(shop, shopify):
    """The attacker holds a products body signed for this shop that never reached us (a sniffed copy)."""
    unseen = payload("shopify/products_create")
    unseen["title"] = "never delivered"

    _assert_refused(shopify("shop/redact", body_of(unseen)), 422)
    assert _intact(shop)


def test_a_data_request_body_replayed_as_customers_redact_erases_nothing(shop, shopify):
    body = body_of(payload("shopify/customers_data_request"))
    assert shopify("customers/data_request", body).status_code == 200

    response = shopify("customers/redact", body)

    _assert_refused(response, 422)
    assert Customer.objects.for_tenant(shop).filter(external_id=SUBJECT).exists()
    assert Event.objects.for_tenant(shop).count() == 2


def test_a_customers_redact_body_replayed_as_shop_redact_erases_only_the_customer(shop, shopify):
    body = body_of(payload("shopify/customers_redact"))
    assert shopify("customers/redact", body).status_code == 200

    response = shopify("shop/redact", body)

    _assert_refused(response, 422)
    assert Product.objects.for_tenant(shop).filter(deleted=False).count() == 2


def test_a_shop_body_seen_under_shop_update_is_refused_as_app_uninstalled(shop, shopify, shopify_connection):
    """shop/update carries the same shop object as app/uninstalled: only its history tells them apart."""
    body = body_of(payload("shopify/app_uninstalled"))
    seen = shopify("shop/update", body)  # not a handled topic: recorded as ignored, with its digest
    assert (seen.status_code, seen.json()["status"]) == (200, "ignored")

    response = shopify("app/uninstalled", body)

    _assert_refused(response, 409)
    assert "shop/update" in response.json()["detail"]
    shopify_connection.refresh_from_db()
    assert shopify_connection.is_active


@pytest.mark.parametrize(
    ("topic", "fixture", "change"),
    [("shop/redact", "shop_redact", {"shop_domain": None}),
     ("shop/redact", "shop_redact", {"shop_domain": "someone-else.myshopify.com"}),
     ("customers/redact", "customers_redact", {"shop_domain": "someone-else.myshopify.com"}),
     ("app/uninstalled", "app_uninstalled", {"myshopify_domain": "someone-else.myshopify.com"})],
)
def test_a_destructive_payload_must_name_this_shop(shop, shopify, shopify_connection, topic, fixture, change):
    data = payload(f"shopify/{fixture}")
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value

    response = shopify(topic, body_of(data))

    assert response.status_code in (401, 422), response.content
    assert _intact(shop)
    shopify_connection.refresh_from_db()
    assert shopify_connection.is_active


def test_a_connection_disabled_by_hand_erases_nothing(shop, shopify, shopify_connection):
    update_connection(shopify_connection, status=IntegrationConnection.Status.DISABLED)

    for topic, fixture in (("shop/redact", "shop_redact"), ("customers/redact", "customers_redact")):
        _assert_refused(shopify(topic, body_of(payload(f"shopify/{fixture}"))), 410)

    assert _intact(shop)


def test_after_an_uninstall_a_replayed_products_body_is_still_refused_as_shop_redact(shop, shopify):
    shopify("app/uninstalled", body_of(payload("shopify/app_uninstalled")))
    body = body_of(payload("shopify/products_create"))

    _assert_refused(shopify("shop/redact", body), 422)

    assert Product.objects.for_tenant(shop).filter(deleted=False).count() == 2
    assert not AuditLog.objects.for_tenant(shop).exclude(action=AuditLog.Action.CONNECTION_DISABLED).exists()


def test_the_same_body_under_sibling_topics_and_a_redelivery_still_work(shopify, tenant):
    """orders/create and orders/paid may carry identical bytes; a retry repeats topic and webhook id."""
    body = body_of(payload("shopify/orders_create"))

    created = shopify("orders/create", body, webhook_id="a1")
    retried = shopify("orders/create", body, webhook_id="a1")
    paid = shopify("orders/paid", body, webhook_id="a2")

    assert [r.json()["status"] for r in (created, retried, paid)] == ["queued", "duplicate", "queued"]
    assert Event.objects.for_tenant(tenant).count() == 2


# --- WooCommerce: deletions carry only an id -------------------------------------------------------------


@pytest.fixture
def store(woo, tenant):
    woo("product.created", body_of(payload("woocommerce/product_created")))  # product 794
    customer = payload("woocommerce/customer_created")  # customer 25
    woo("customer.created", body_of(customer))
    woo("order.created", body_of(payload("woocommerce/order_created")))  # customer 25's order
    assert Event.objects.for_tenant(tenant).count() == 2
    return tenant


def test_a_product_deleted_body_replayed_as_customer_deleted_is_refused(store, woo):
    body = body_of({"id": 25})  # product 25 deleted: the very bytes customer.deleted would carry for customer 25
    assert woo("product.deleted", body).status_code == 200

    response = woo("customer.deleted", body)

    _assert_refused(response, 409)
    assert Customer.objects.for_tenant(store).filter(external_id="25").exists()
    assert Event.objects.for_tenant(store).count() == 2


@pytest.mark.parametrize(
    ("seen_topic", "fixture", "replayed_topic"),
    [("product.updated", "product_created", "product.deleted"),
     ("customer.updated", "customer_created", "customer.deleted"),
     ("order.updated", "order_created", "customer.deleted")],
)
def test_a_full_woocommerce_body_replayed_as_a_deletion_is_refused(store, woo, seen_topic, fixture, replayed_topic):
    body = body_of(payload(f"woocommerce/{fixture}"))
    woo(seen_topic, body)

    response = woo(replayed_topic, body)

    _assert_refused(response, 422)
    assert not Product.objects.for_tenant(store).get(external_id="794").deleted
    assert Customer.objects.for_tenant(store).filter(external_id="25").exists()
    assert Event.objects.for_tenant(store).count() == 2


def test_a_woocommerce_connection_disabled_by_hand_deletes_nothing(store, woo, woo_connection):
    update_connection(woo_connection, status=IntegrationConnection.Status.DISABLED)

    _assert_refused(woo("customer.deleted", body_of({"id": 25})), 410)

    assert Customer.objects.for_tenant(store).filter(external_id="25").exists()



# --- deliveries recorded before these checks, or before the connection was disabled -----------------------


def _queued(tenant, connection, topic: str, body: bytes) -> WebhookDelivery:
    return WebhookDelivery.objects.create(tenant=tenant, connection=connection, delivery_id=f"old-{topic}",
                                          topic=topic, body=body)


def test_a_forged_delivery_recorded_before_the_checks_is_ignored_when_processed(shop, shopify_connection):
    delivery = _queued(shop, shopify_connection, "shop/redact", body_of(payload("shopify/products_create")))

    with tenant_context(shop.pk):
        assert process_delivery(shop.pk, delivery.pk) == WebhookDelivery.Status.IGNORED

    delivery.refresh_from_db()
    assert delivery.result["ignored"].startswith("Not a shop/redact payload")
    assert _intact(shop)


def test_a_queued_erasure_is_not_done_once_the_connection_is_disabled_by_hand(shop, shopify_connection):
    delivery = _queued(shop, shopify_connection, "shop/redact", body_of(payload("shopify/shop_redact")))
    update_connection(shopify_connection, status=IntegrationConnection.Status.DISABLED)

    with tenant_context(shop.pk):
        assert process_delivery(shop.pk, delivery.pk) == WebhookDelivery.Status.IGNORED

    delivery.refresh_from_db()
    assert delivery.result == {"ignored": "the connection no longer takes shop/redact deliveries"}
    assert _intact(shop)
