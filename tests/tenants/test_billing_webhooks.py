"""POST /webhooks/stripe: signatures checked for real, each event applied once, plan and status in step.

Payloads are shaped like Stripe's API reference (Event wrapping a Subscription or an Invoice) and signed
with a test secret exactly as Stripe signs them (t=<time>,v1=HMAC-SHA256 of "<t>.<body>").
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from rest_framework.test import APIClient

from tenants.api_keys import create_api_key
from tenants.billing.models import StripeEvent
from tenants.models import Tenant
from tests import stripe_fake
from tests.stripe_fake import event, invoice, sign, subscription

pytestmark = pytest.mark.django_db

URL = "/webhooks/stripe"
CUSTOMER = "cus_FakeShopA"


@pytest.fixture
def fake_stripe(settings):
    with stripe_fake.installed(settings) as fake:
        yield fake


@pytest.fixture
def shop(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(stripe_customer_id=CUSTOMER)
    tenant.refresh_from_db()
    return tenant


def deliver(client, payload: dict | str, *, signature: str | None = None, **headers):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    if signature is None:
        signature = sign(body)
    if signature:
        headers["HTTP_STRIPE_SIGNATURE"] = signature
    return client.post(URL, data=body, content_type="application/json", **headers)


def fresh(tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


# --- Signature -------------------------------------------------------------------------------------


def test_a_signed_subscription_created_moves_the_shop_to_its_paid_plan(client, fake_stripe, shop):
    sub = subscription(CUSTOMER, prices=("price_growth_flat", "price_growth_recs", "price_growth_events"))
    response = deliver(client, event("customer.subscription.created", sub))
    assert response.status_code == 200, response.content
    assert response.json()["result"] == "applied"
    shop = fresh(shop)
    assert (shop.plan, shop.subscription_status, shop.stripe_subscription_id) == ("growth", "active", sub["id"])
    item = sub["items"]["data"][0]
    assert shop.current_period_start == dt.datetime.fromtimestamp(item["current_period_start"], dt.UTC)
    assert shop.current_period_end == dt.datetime.fromtimestamp(item["current_period_end"], dt.UTC)
    assert StripeEvent.objects.get().tenant_id == shop.pk


@pytest.mark.parametrize(
    "case",
    ["missing", "wrong_secret", "tampered_body", "garbage_header", "other_scheme_only", "stale", "far_future_tamper"],
)
def test_a_bad_signature_gets_400_and_changes_nothing(client, fake_stripe, shop, case):
    body = json.dumps(event("customer.subscription.created", subscription(CUSTOMER)))
    now = int(time.time())
    signature, sent = {
        "missing": ("", body),
        "wrong_secret": (sign(body, secret="whsec_someone_else"), body),
        "tampered_body": (sign(body), body.replace('"active"', '"trialing"')),
        "garbage_header": ("not-a-signature", body),
        "other_scheme_only": (sign(body).replace("v1=", "v0="), body),
        "stale": (sign(body, timestamp=now - 600), body),  # older than the 300 s tolerance: a replay
        "far_future_tamper": (sign(body, timestamp=now).replace(f"t={now}", f"t={now + 60}"), body),
    }[case]
    response = deliver(client, sent, signature=signature)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/invalid-signature"
    assert not StripeEvent.objects.exists()
    assert fresh(shop).plan == "free"


def test_a_signed_body_that_is_not_an_event_gets_400(client, fake_stripe, shop):
    for body in ("{not json", "[1, 2]", json.dumps({"id": "evt_1", "object": "charge"})):
        response = deliver(client, body)
        assert response.status_code == 400, (body, response.content)
        assert response.json()["type"] == "/problems/malformed-event"
    broken = event("customer.subscription.updated", "oops")  # data.object is not an object
    assert deliver(client, broken).status_code == 400
    assert not StripeEvent.objects.exists()


def test_without_a_webhook_secret_the_endpoint_is_unavailable(client, settings, shop):
    settings.STRIPE_WEBHOOK_SECRET = None
    response = deliver(client, event("invoice.paid", invoice(CUSTOMER)))
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/billing-not-configured"


def test_only_post_is_accepted(client, fake_stripe):
    assert client.get(URL).status_code == 405


# --- Idempotency and order -------------------------------------------------------------------------


def test_a_replayed_event_id_is_acknowledged_and_applied_once(client, fake_stripe, shop):
    created = event("customer.subscription.created", subscription(CUSTOMER))
    assert deliver(client, created).json()["result"] == "applied"
    deleted = event("customer.subscription.deleted", subscription(CUSTOMER, status="canceled"))
    assert deliver(client, deleted).json()["result"] == "applied"
    assert fresh(shop).plan == "free"
    # Stripe redelivers the first event (its id is the key), freshly signed: it must not re-upgrade the shop.
    replay = deliver(client, created)
    assert replay.status_code == 200
    assert replay.json() == {"received": True, "id": created["id"], "result": "duplicate"}
    assert fresh(shop).plan == "free"
    assert StripeEvent.objects.count() == 2


def test_an_unknown_event_type_is_acknowledged_and_recorded_as_ignored(client, fake_stripe, shop):
    customer_updated = event("customer.updated", {"id": CUSTOMER, "object": "customer", "email": "x@example.com"})
    response = deliver(client, customer_updated)
    assert response.status_code == 200
    assert response.json()["result"] == "ignored"
    assert StripeEvent.objects.get(pk=customer_updated["id"]).result == "ignored"
    assert fresh(shop).plan == "free"


def test_an_event_for_a_customer_no_shop_has_changes_no_shop(client, fake_stripe, shop, other_tenant):
    response = deliver(client, event("customer.subscription.created", subscription("cus_Stranger")))
    assert response.status_code == 200
    assert response.json()["result"] == "unknown_customer"
    assert {t.plan for t in Tenant.objects.all()} == {"free"}


def test_a_subscription_is_linked_by_the_checkout_metadata_when_the_customer_is_new(client, fake_stripe, tenant):
    sub = subscription("cus_NewOne", metadata={"tenant_id": str(tenant.pk), "plan": "growth"})
    assert deliver(client, event("customer.subscription.created", sub)).json()["result"] == "applied"
    linked = fresh(tenant)
    assert (linked.stripe_customer_id, linked.plan) == ("cus_NewOne", "growth")


def test_metadata_cannot_take_over_a_shop_that_has_a_customer(client, fake_stripe, shop):
    sub = subscription("cus_Intruder", metadata={"tenant_id": str(shop.pk)})
    assert deliver(client, event("customer.subscription.created", sub)).json()["result"] == "unknown_customer"
    assert (fresh(shop).stripe_customer_id, fresh(shop).plan) == (CUSTOMER, "free")


def test_updates_and_deletion_keep_the_plan_in_step(client, fake_stripe, shop):
    t0 = int(time.time()) - 100
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER), created=t0))
    upgraded = subscription(CUSTOMER, prices=("price_scale_flat", "price_scale_recs", "price_scale_events"))
    deliver(client, event("customer.subscription.updated", upgraded, created=t0 + 10))
    assert fresh(shop).plan == "scale"
    gone = subscription(CUSTOMER, status="canceled", prices=("price_scale_flat",))
    deliver(client, event("customer.subscription.deleted", gone, created=t0 + 20))
    shop = fresh(shop)
    assert (shop.plan, shop.subscription_status) == ("free", "canceled")


def test_an_older_event_delivered_late_does_not_overwrite_a_newer_state(client, fake_stripe, shop):
    t0 = int(time.time()) - 100
    newer = subscription(CUSTOMER, prices=("price_scale_flat",))
    assert deliver(client, event("customer.subscription.updated", newer, created=t0 + 50)).json()["result"] == "applied"
    older = subscription(CUSTOMER, prices=("price_growth_flat",))
    assert deliver(client, event("customer.subscription.updated", older, created=t0)).json()["result"] == "stale"
    assert fresh(shop).plan == "scale"


def test_the_end_of_a_replaced_subscription_does_not_downgrade_the_shop(client, fake_stripe, shop):
    t0 = int(time.time()) - 100
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER, sub_id="sub_New"), created=t0))
    old_end = subscription(CUSTOMER, status="canceled", sub_id="sub_Old")
    assert deliver(client, event("customer.subscription.deleted", old_end, created=t0 + 5)).json()["result"] == "stale"
    assert (fresh(shop).plan, fresh(shop).stripe_subscription_id) == ("growth", "sub_New")


def test_an_incomplete_first_payment_does_not_grant_the_plan(client, fake_stripe, shop):
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER, status="incomplete")))
    assert (fresh(shop).plan, fresh(shop).subscription_status) == ("free", "incomplete")


# --- Payment failures and the grace period --------------------------------------------------------


def test_payment_failed_starts_the_grace_period_once_and_paid_ends_it(client, fake_stripe, shop):
    first = int(time.time()) - 3 * 86_400
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER), created=first - 100))
    deliver(client, event("invoice.payment_failed", invoice(CUSTOMER, status="open"), created=first))
    assert fresh(shop).payment_failed_at == dt.datetime.fromtimestamp(first, dt.UTC)
    # Stripe's retry fails again: the grace period still runs from the first failure.
    deliver(client, event("invoice.payment_failed", invoice(CUSTOMER, status="open"), created=first + 86_400))
    assert fresh(shop).payment_failed_at == dt.datetime.fromtimestamp(first, dt.UTC)
    assert fresh(shop).plan == "growth"  # still paid for during the grace period
    deliver(client, event("invoice.paid", invoice(CUSTOMER), created=first + 2 * 86_400))
    assert fresh(shop).payment_failed_at is None
    # A late failure notice for the invoice since paid is older than the payment: ignored.
    late = deliver(client, event("invoice.payment_failed", invoice(CUSTOMER, status="open"), created=first + 10))
    assert late.json()["result"] == "stale"
    assert fresh(shop).payment_failed_at is None


def _ingest_client(tenant) -> APIClient:
    _, raw = create_api_key(tenant, name="ingest", scopes=["ingest"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _events(n: int) -> dict:
    return {"events": [{"type": "view", "customer_id": "c1", "product_id": "p1", "event_id": f"e{i}-{time.time_ns()}"}
                       for i in range(n)]}


def test_past_the_grace_period_the_api_says_402_and_why(client, fake_stripe, settings, shop):
    from tests.factories import ProductFactory

    ProductFactory(tenant=shop, external_id="p1")
    api = _ingest_client(shop)
    failed_at = int(time.time()) - (settings.RECSVC_BILLING_GRACE_DAYS + 1) * 86_400
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER), created=failed_at - 100))
    # Paid plan: far past the free quota (5 events) and still served; this also caches the API key.
    assert api.post("/v1/events/bulk", _events(8), format="json").status_code == 200
    deliver(client, event("invoice.payment_failed", invoice(CUSTOMER, status="open"), created=failed_at))
    limited = api.post("/v1/events/bulk", _events(1), format="json")
    assert limited.status_code == 402, limited.content
    assert limited["Content-Type"] == "application/problem+json"
    problem = limited.json()
    assert problem["type"] == "/problems/payment-required" and problem["title"] == "Payment required"
    assert (problem["meter"], problem["limit"], problem["used"], problem["plan"]) == ("events", 5, 8, "free")
    assert "Payment for the Growth plan failed" in problem["detail"] and "Billing page" in problem["detail"]
    # Paying lifts the limit on the next request (the cached key's tenant is dropped on commit).
    deliver(client, event("invoice.paid", invoice(CUSTOMER), created=int(time.time())))
    assert api.post("/v1/events/bulk", _events(1), format="json").status_code == 200


def test_within_the_grace_period_the_shop_is_served(client, fake_stripe, shop):
    from tests.factories import ProductFactory

    ProductFactory(tenant=shop, external_id="p1")
    api = _ingest_client(shop)
    deliver(client, event("customer.subscription.created", subscription(CUSTOMER)))
    deliver(client, event("invoice.payment_failed", invoice(CUSTOMER, status="open")))
    for _ in range(3):
        assert api.post("/v1/events/bulk", _events(4), format="json").status_code == 200
