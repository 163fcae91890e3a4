"""Shopify's mandatory privacy topics, done for real: customers/data_request exports everything held about
the customer, customers/redact erases it, shop/redact erases the whole shop's store data; each is audited."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.cache import cache
from django.utils import timezone

from recs.models import (
    AuditLog,
    Customer,
    CustomerVersion,
    DataExport,
    Event,
    EventType,
    IntegrationConnection,
    Product,
    ProductVersion,
    ServedAnswer,
    WebhookDelivery,
)
from serving import answer_keys
from tests.factories import EventFactory
from tests.recs.webhooks import body_of, payload, shopify_headers

pytestmark = pytest.mark.django_db

SUBJECT = "191167"  # the customer named by Shopify's sample compliance payloads
OTHER = "706405506930370084"
GUEST_ORDER = "299938"  # one of the sample's orders_requested / orders_to_redact


@pytest.fixture
def send(post_webhook, shopify_connection):
    def send(topic: str, data: dict, **headers):
        body = body_of(data)
        return post_webhook("shopify", shopify_connection, body, shopify_headers(topic, body, **headers))

    return send


@pytest.fixture
def shop_data(send, tenant):
    """The subject with two attribute versions and an order, a guest order the request names, and another
    customer with an order of their own."""
    customer = payload("shopify/customers_create")
    customer["id"] = int(SUBJECT)
    send("customers/create", customer)
    customer.update(tags="vip", updated_at="2022-02-01T00:00:00Z")
    send("customers/update", customer)
    send("customers/create", payload("shopify/customers_create"))  # OTHER

    order = payload("shopify/orders_create")
    order["customer"]["id"] = int(SUBJECT)
    send("orders/create", order)
    guest = payload("shopify/orders_create")
    guest.update(id=int(GUEST_ORDER), customer=None)
    send("orders/create", guest)
    theirs = payload("shopify/orders_create")
    theirs.update(id=1001)
    theirs["customer"]["id"] = int(OTHER)
    send("orders/create", theirs)
    assert Event.objects.for_tenant(tenant).count() == 6
    return tenant


def _events_of(tenant, customer_id: str):
    return Event.objects.for_tenant(tenant).filter(customer__external_id=customer_id)


def _served(tenant, customer: str = "", session: str = "") -> ServedAnswer:
    return ServedAnswer.objects.create(
        tenant=tenant, recommendation_id=uuid.uuid4(), served_at=timezone.now(), endpoint="recommendations",
        variant="control", customer_external_id=customer, session_id=session, items=["sku-1"], propensities=[1.0],
    )


def test_data_request_exports_everything_held_about_the_customer(send, shop_data, shopify_connection):
    shown = _served(shop_data, customer=SUBJECT)
    _served(shop_data, customer=OTHER)
    response = send("customers/data_request", payload("shopify/customers_data_request"))

    assert response.status_code == 200, response.content
    export = DataExport.objects.for_tenant(shop_data).get()
    assert (export.subject, export.request_id, export.connection_id) == (SUBJECT, "9999", shopify_connection.pk)
    content = export.content
    assert content["format"] == "recsvc.customer-export.v1"
    customers = {c["id"]: c for c in content["customers"]}
    assert set(customers) == {SUBJECT, f"shopify-guest-order-{GUEST_ORDER}"}
    history = customers[SUBJECT]["attribute_history"]
    assert [h["attributes"].get("tags") for h in history] == [None, ["vip"]]
    assert history[0]["valid_to"] == history[1]["valid_from"]
    assert len(content["events"]) == 4  # their order's two lines and the named guest order's two
    assert {e["customer_id"] for e in content["events"]} == {SUBJECT, f"shopify-guest-order-{GUEST_ORDER}"}
    assert {e["type"] for e in content["events"]} == {"purchase"}
    assert {e["product_title"] for e in content["events"]} == {"IPod Nano - 8GB", "Example T-Shirt"}
    assert [(a["recommendation_id"], a["customer_id"], a["product_ids"]) for a in content["recommendations_shown"]] == [
        (str(shown.recommendation_id), SUBJECT, ["sku-1"])]
    assert OTHER not in json.dumps(content)
    audit = AuditLog.objects.for_tenant(shop_data).get(action=AuditLog.Action.DATA_EXPORTED)
    assert (audit.subject, audit.details["export_id"], audit.details["events"]) == (SUBJECT, export.pk, 4)
    assert "john@example.com" not in json.dumps(audit.details)


def test_data_request_for_someone_unknown_records_an_empty_export(send, tenant):
    send("customers/data_request", payload("shopify/customers_data_request"))

    export = DataExport.objects.for_tenant(tenant).get()
    assert (export.content["customers"], export.content["events"]) == ([], [])
    assert AuditLog.objects.for_tenant(tenant).filter(action=AuditLog.Action.DATA_EXPORTED).count() == 1


def test_customers_redact_erases_the_customer_their_events_history_and_cached_recommendations(send, shop_data):
    send("customers/data_request", payload("shopify/customers_data_request"))
    subject = Customer.objects.for_tenant(shop_data).get(external_id=SUBJECT)
    EventFactory(tenant=shop_data, customer=subject, session_id="s-subject",
                 product=Product.objects.for_tenant(shop_data).first())
    shown = [_served(shop_data, customer=SUBJECT), _served(shop_data, session="s-subject")]
    kept_answer = _served(shop_data, customer=OTHER)
    theirs = answer_keys.customer_prefix(shop_data.pk, SUBJECT) + "home:model-7"
    guest = answer_keys.customer_prefix(shop_data.pk, f"shopify-guest-order-{GUEST_ORDER}") + "pdp:model-7"
    kept = answer_keys.customer_prefix(shop_data.pk, OTHER) + "home:model-7"
    cache.set_many({theirs: ["sku-1"], guest: ["sku-2"], kept: ["sku-3"]})
    assert cache.get(theirs) == ["sku-1"]

    response = send("customers/redact", payload("shopify/customers_redact"))

    assert response.status_code == 200
    erased = [SUBJECT, f"shopify-guest-order-{GUEST_ORDER}"]
    assert not Customer.objects.for_tenant(shop_data).filter(external_id__in=erased).exists()
    assert not _events_of(shop_data, SUBJECT).exists()
    assert not Event.objects.for_tenant(shop_data).filter(event_id__startswith=f"shopify:order:{GUEST_ORDER}:").exists()
    assert set(CustomerVersion.objects.for_tenant(shop_data).values_list("customer__external_id", flat=True)) == {OTHER}
    assert not DataExport.objects.for_tenant(shop_data).exists()  # the earlier export held their data too
    assert (cache.get(theirs), cache.get(guest), cache.get(kept)) == (None, None, ["sku-3"])
    # Everyone else is untouched.
    assert _events_of(shop_data, OTHER).count() == 2
    assert Product.objects.for_tenant(shop_data).count() == 2
    audit = AuditLog.objects.for_tenant(shop_data).get(action=AuditLog.Action.CUSTOMER_REDACTED)
    assert audit.subject == SUBJECT
    assert not ServedAnswer.objects.for_tenant(shop_data).filter(pk__in=[a.pk for a in shown]).exists()
    assert ServedAnswer.objects.for_tenant(shop_data).filter(pk=kept_answer.pk).exists()
    keys = ("customers", "events", "attribute_versions", "exports", "served_answers", "cache_keys")
    assert {k: audit.details[k] for k in keys} == {
        "customers": 2, "events": 5, "attribute_versions": 2, "exports": 1, "served_answers": 2, "cache_keys": 2,
    }
    assert "john@example.com" not in json.dumps(audit.details)


def test_a_repeated_redact_erases_nothing_more_and_is_audited_again(send, shop_data):
    send("customers/redact", payload("shopify/customers_redact"))

    again = send("customers/redact", payload("shopify/customers_redact"))

    assert again.status_code == 200
    audits = list(AuditLog.objects.for_tenant(shop_data).filter(action="customer_redacted").order_by("pk"))
    assert len(audits) == 2
    assert (audits[1].details["customers"], audits[1].details["events"]) == (0, 0)
    assert _events_of(shop_data, OTHER).count() == 2


def test_shop_redact_erases_all_store_data_and_leaves_another_tenant_untouched(send, shop_data, other_tenant):
    EventType.objects.create(tenant=shop_data, name="wishlist", weight=3.0)
    send("customers/data_request", payload("shopify/customers_data_request"))
    EventFactory.create_batch(3, tenant=other_tenant)
    others_before = {
        model.__name__: model.objects.for_tenant(other_tenant).count()
        for model in (Product, Customer, Event, ProductVersion, CustomerVersion)
    }
    cache.set(answer_keys.customer_prefix(shop_data.pk, OTHER) + "home", ["x"])
    cache.set(answer_keys.customer_prefix(other_tenant.pk, OTHER) + "home", ["y"])
    _served(shop_data, customer=OTHER)
    theirs = _served(other_tenant, customer=OTHER)

    response = send("shop/redact", payload("shopify/shop_redact"))

    assert response.status_code == 200
    assert list(ServedAnswer.objects.for_tenant(other_tenant)) == [theirs]
    for model in (Product, Customer, Event, ProductVersion, CustomerVersion, DataExport, ServedAnswer):
        assert not model.objects.for_tenant(shop_data).exists(), model.__name__
    deliveries = list(WebhookDelivery.objects.for_tenant(shop_data))
    assert [(d.topic, d.status) for d in deliveries] == [("shop/redact", "processed")]  # earlier bodies erased too
    assert IntegrationConnection.objects.for_tenant(shop_data).exists()
    assert EventType.objects.for_tenant(shop_data).exists()  # configuration, not store data
    assert cache.get(answer_keys.customer_prefix(shop_data.pk, OTHER) + "home") is None
    assert cache.get(answer_keys.customer_prefix(other_tenant.pk, OTHER) + "home") == ["y"]
    audit = AuditLog.objects.for_tenant(shop_data).get(action=AuditLog.Action.SHOP_REDACTED)
    assert (audit.details["events"], audit.details["products"], audit.details["exports"]) == (6, 2, 1)
    assert {
        model.__name__: model.objects.for_tenant(other_tenant).count()
        for model in (Product, Customer, Event, ProductVersion, CustomerVersion)
    } == others_before
    assert others_before["Event"] == 3


@pytest.mark.parametrize(
    ("topic", "fixture"),
    [("customers/data_request", "customers_data_request"), ("customers/redact", "customers_redact"),
     ("shop/redact", "shop_redact")],
)
def test_privacy_topics_are_still_accepted_after_the_app_is_uninstalled(send, tenant, topic, fixture):
    send("app/uninstalled", payload("shopify/app_uninstalled"))
    assert send("products/create", payload("shopify/products_create")).status_code == 410

    response = send(topic, payload(f"shopify/{fixture}"))

    assert response.status_code == 200
    delivery = WebhookDelivery.objects.for_tenant(tenant).get(topic=topic)
    assert delivery.status == WebhookDelivery.Status.PROCESSED


def test_a_privacy_request_with_a_bad_signature_is_401_and_erases_nothing(send, shop_data):
    response = send("customers/redact", payload("shopify/customers_redact"), secret="wrong-secret")

    assert response.status_code == 401
    assert _events_of(shop_data, SUBJECT).count() == 2
    assert not AuditLog.objects.for_tenant(shop_data).exists()


def test_a_privacy_request_naming_another_shop_is_401_and_erases_nothing(send, shop_data):
    """One app secret signs for every shop that installed the app: the payload must name this one."""
    request = payload("shopify/shop_redact")
    request["shop_domain"] = "someone-else.myshopify.com"

    response = send("shop/redact", request)

    assert response.status_code == 401
    assert "another shop" in response.json()["detail"]
    assert Event.objects.for_tenant(shop_data).count() == 6
    assert not WebhookDelivery.objects.for_tenant(shop_data).filter(topic="shop/redact").exists()
    assert not AuditLog.objects.for_tenant(shop_data).exists()


def test_the_export_is_handed_on_through_the_api_and_only_to_its_shop(send, shop_data, api, outsider_api):
    send("customers/data_request", payload("shopify/customers_data_request"))
    export = DataExport.objects.for_tenant(shop_data).get()

    listed = api.get("/v1/data-exports")
    fetched = api.get(f"/v1/data-exports/{export.pk}")

    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert {k: row[k] for k in ("id", "subject", "request_id", "events")} == {
        "id": export.pk, "subject": SUBJECT, "request_id": "9999", "events": 4,
    }
    assert "content" not in row
    assert fetched.json()["content"] == export.content
    assert outsider_api.get(f"/v1/data-exports/{export.pk}").status_code == 404
    assert outsider_api.get("/v1/data-exports").json()["results"] == []
