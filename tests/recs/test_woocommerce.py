"""WooCommerce webhooks end to end: signed deliveries of payloads shaped like the REST API (wc/v3)
documentation, the unsigned creation ping, and the refused cases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from recs.integrations.connections import create_connection, update_connection
from recs.models import AuditLog, Customer, CustomerVersion, Event, IntegrationConnection, Product, WebhookDelivery
from tests.recs.webhooks import WOO_SECRET, body_of, payload, woo_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def send(post_webhook, woo_connection):
    def send(topic: str, data: dict, connection=None, **headers):
        body = body_of(data)
        return post_webhook("woocommerce", connection or woo_connection, body, woo_headers(topic, body, **headers))

    return send


def _nothing_stored(tenant) -> bool:
    return not any(
        model.objects.for_tenant(tenant).exists() for model in (WebhookDelivery, Product, Customer, Event)
    )


def _deliveries(tenant) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.for_tenant(tenant).order_by("pk"))


# --- topics -------------------------------------------------------------------------------------------


def test_product_created_maps_the_documented_payload(send, tenant):
    response = send("product.created", payload("woocommerce/product_created"))

    assert response.status_code == 200, response.content
    product = Product.objects.for_tenant(tenant).get(external_id="794")
    assert (product.title, product.price, product.category_path) == ("Premium Quality", Decimal("21.99"), ["Clothing"])
    assert product.description.startswith("Pellentesque habitant morbi") and "<p>" not in product.description
    assert product.stock is None  # manage_stock false: not tracked
    assert product.available
    assert product.attributes == {"type": "simple", "slug": "premium-quality-19"}
    assert product.source_updated_at == dt.datetime(2017, 3, 23, 20, 1, 14, tzinfo=dt.UTC)  # date_modified_gmt


def test_product_updated_out_of_order_keeps_the_newer_data(send, tenant):
    send("product.created", payload("woocommerce/product_created"))
    newer = payload("woocommerce/product_created")
    newer.update(price="24.54", manage_stock=True, stock_quantity=7, date_modified_gmt="2017-03-25T10:00:00")
    older = payload("woocommerce/product_created")
    older.update(price="1.00", date_modified_gmt="2017-03-24T10:00:00")

    send("product.updated", newer)
    send("product.updated", older)

    product = Product.objects.for_tenant(tenant).get(external_id="794")
    assert (product.price, product.stock) == (Decimal("24.54"), 7)
    assert _deliveries(tenant)[-1].result["stale"] == 1


def test_product_deleted_carries_only_the_id_and_restored_brings_it_back(send, tenant):
    send("product.created", payload("woocommerce/product_created"))

    send("product.deleted", {"id": 794})
    assert Product.objects.for_tenant(tenant).get(external_id="794").deleted

    restored = payload("woocommerce/product_created")
    restored["date_modified_gmt"] = "2017-03-26T10:00:00"
    send("product.restored", restored)
    assert not Product.objects.for_tenant(tenant).get(external_id="794").deleted


def test_a_variation_is_collapsed_into_its_parent(send, tenant):
    variation = payload("woocommerce/product_created")
    variation.update(id=23, parent_id=22, type="variation", name="Ship Your Idea - Black, M")

    response = send("product.updated", variation)

    assert response.status_code == 200
    assert not Product.objects.for_tenant(tenant).exists()
    delivery = _deliveries(tenant)[0]
    assert delivery.status == "ignored"
    assert delivery.result == {"ignored": "a variation: collapsed into its parent product"}


def test_customer_created_keeps_no_personal_data(send, tenant):
    send("customer.created", payload("woocommerce/customer_created"))

    customer = Customer.objects.for_tenant(tenant).get(external_id="25")
    assert customer.attributes == {"role": "customer", "country": "US", "paying_customer": False}
    assert customer.source_updated_at == dt.datetime(2017, 3, 21, 19, 9, 30, tzinfo=dt.UTC)
    for personal in ("john.doe@example.com", "Doe", "969 Market", "555"):
        assert personal not in str(customer.attributes)


def test_an_unpaid_order_is_no_purchase_until_it_is_paid(send, tenant):
    pending = payload("woocommerce/order_created")
    pending.update(status="pending", date_paid_gmt=None)

    send("order.created", pending)
    assert not Event.objects.for_tenant(tenant).exists()

    send("order.updated", payload("woocommerce/order_created"))  # processing: paid
    completed = payload("woocommerce/order_created")
    completed["status"] = "completed"
    send("order.updated", completed)

    events = list(Event.objects.for_tenant(tenant).select_related("customer", "product").order_by("event_id"))
    assert [(e.event_id, e.product.external_id, e.quantity, e.price) for e in events] == [
        ("woocommerce:order:727:315", "93", 2, Decimal("3.00")),
        ("woocommerce:order:727:316", "22", 1, Decimal("12.00")),  # variation 23 counts for its product 22
    ]
    assert {e.customer.external_id for e in events} == {"25"}
    assert {e.ts for e in events} == {dt.datetime(2017, 3, 22, 19, 28, 8, tzinfo=dt.UTC)}  # date_paid_gmt
    results = [d.result for d in _deliveries(tenant)]
    assert results[0] == {"ignored": "order status 'pending' is not a purchase (yet)"}
    assert (results[1]["events_stored"], results[2]["events_stored"], results[2]["events_duplicate"]) == (2, 0, 2)


def test_a_guest_order_gets_a_customer_standing_for_the_order(send, tenant):
    order = payload("woocommerce/order_created")
    order["customer_id"] = 0

    send("order.created", order)

    customers = {e.customer.external_id for e in Event.objects.for_tenant(tenant).select_related("customer")}
    assert customers == {"woocommerce-guest-order-727"}


def test_customer_deleted_erases_the_customer_and_their_events(send, tenant):
    send("customer.created", payload("woocommerce/customer_created"))
    send("order.created", payload("woocommerce/order_created"))
    other = payload("woocommerce/order_created")
    other.update(id=728, customer_id=26)
    send("order.created", other)

    response = send("customer.deleted", {"id": 25})

    assert response.status_code == 200
    assert not Customer.objects.for_tenant(tenant).filter(external_id="25").exists()
    assert not CustomerVersion.objects.for_tenant(tenant).exists()
    assert {e.customer.external_id for e in Event.objects.for_tenant(tenant).select_related("customer")} == {"26"}
    audit = AuditLog.objects.for_tenant(tenant).get()
    assert (audit.action, audit.subject, audit.details["events"]) == ("customer_deleted", "25", 2)


# --- the ping, refused and idempotent deliveries ----------------------------------------------------------


def test_the_unsigned_creation_ping_is_200_and_stores_nothing(post_webhook, woo_connection, tenant):
    response = post_webhook(
        "woocommerce", woo_connection, b"webhook_id=142", {}, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert _nothing_stored(tenant)
    woo_connection.refresh_from_db()
    assert woo_connection.last_delivery_at is None


def test_a_ping_to_a_disabled_connection_is_410(post_webhook, woo_connection, tenant):
    update_connection(woo_connection, status=IntegrationConnection.Status.DISABLED)

    response = post_webhook(
        "woocommerce", woo_connection, b"webhook_id=142", {}, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 410


@pytest.mark.parametrize("body", [b"webhook_id=142&topic=order.created", b"webhook_id=abc", b'{"id": 794}'])
def test_anything_else_unsigned_is_401(post_webhook, woo_connection, tenant, body):
    response = post_webhook("woocommerce", woo_connection, body, {"X-WC-Webhook-Topic": "product.created"})

    assert response.status_code == 401
    assert _nothing_stored(tenant)


def test_a_wrong_secret_is_401_and_stores_nothing(send, tenant):
    response = send("product.created", payload("woocommerce/product_created"), secret="guessed-secret")

    assert response.status_code == 401
    assert _nothing_stored(tenant)


def test_a_tampered_body_is_401(post_webhook, woo_connection, tenant):
    body = body_of(payload("woocommerce/product_created"))
    headers = woo_headers("product.created", body)

    response = post_webhook("woocommerce", woo_connection, body.replace(b"21.99", b"0.99"), headers)

    assert response.status_code == 401
    assert _nothing_stored(tenant)


@pytest.mark.parametrize(
    ("header", "status"),
    [("X-WC-Webhook-Signature", 401), ("X-WC-Webhook-Topic", 400), ("X-WC-Webhook-Delivery-ID", 400)],
)
def test_a_missing_header_is_refused(post_webhook, woo_connection, tenant, header, status):
    body = body_of(payload("woocommerce/product_created"))
    headers = woo_headers("product.created", body)
    del headers[header]

    response = post_webhook("woocommerce", woo_connection, body, headers)

    assert response.status_code == status
    assert header in response.json()["detail"]
    assert _nothing_stored(tenant)


def test_an_unknown_topic_is_200_and_recorded_as_ignored(send, tenant):
    response = send("coupon.created", {"id": 719, "code": "10off", "amount": "10.00"})

    assert response.status_code == 200
    assert [(d.topic, d.status) for d in _deliveries(tenant)] == [("coupon.created", "ignored")]


def test_malformed_json_is_400(post_webhook, woo_connection, tenant):
    body = b'{"id": 794, "name": "Premium Quality"'

    response = post_webhook("woocommerce", woo_connection, body, woo_headers("product.created", body))

    assert response.status_code == 400
    assert _nothing_stored(tenant)


def test_a_redelivery_stores_nothing_twice(send, tenant):
    first = send("product.created", payload("woocommerce/product_created"), delivery_id="3a7c9f0e11")
    again = send("product.created", payload("woocommerce/product_created"), delivery_id="3a7c9f0e11")

    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert first.json()["status"] == "queued"
    assert len(_deliveries(tenant)) == 1
    assert Product.objects.for_tenant(tenant).count() == 1


def test_a_disabled_connection_is_410_and_stores_nothing(send, tenant, woo_connection):
    update_connection(woo_connection, status=IntegrationConnection.Status.DISABLED)

    response = send("product.created", payload("woocommerce/product_created"))

    assert response.status_code == 410
    assert _nothing_stored(tenant)


def test_a_delivery_from_another_store_is_401(send, tenant):
    response = send("product.created", payload("woocommerce/product_created"), source="https://evil.example.net/")

    assert response.status_code == 401
    assert _nothing_stored(tenant)


def test_another_tenants_connection_uuid_refuses_our_signed_delivery(send, tenant, other_tenant):
    theirs = create_connection(other_tenant.pk, platform="woocommerce", shop_domain="https://b.example.org",
                               secret="their-webhook-secret")

    response = send("product.created", payload("woocommerce/product_created"), connection=theirs, secret=WOO_SECRET)

    assert response.status_code == 401
    assert _nothing_stored(tenant) and _nothing_stored(other_tenant)
