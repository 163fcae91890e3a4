"""The dashboard's Billing page per persona: usage against quota, Stripe Checkout and Customer Portal.

Stripe is faked at the HTTP client edge (tests/stripe_fake.py): Checkout and the portal return the URLs
Stripe's hosted pages live at, and the fake checks what the library sent (customer, prices, metadata).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from core.dashboard.formats import format_day
from tenants.billing import usage
from tenants.billing.periods import bounds, period_of
from tenants.dashboard.shop import SESSION_KEY
from tenants.models import Tenant
from tests import stripe_fake

pytestmark = pytest.mark.django_db

CHECKOUT = "/billing/checkout"
PORTAL = "/billing/portal"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake_stripe(settings):
    with stripe_fake.installed(settings) as fake:
        yield fake


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bar(html: str, meter: str) -> tuple[int, int, int]:
    """(used, limit, width %) of a meter's usage bar."""
    row = re.search(rf'id="usage-{meter}" data-used="(\d+)" data-limit="(\d+)".*?style="width: (\d+)%"', html, re.S)
    assert row, f"no usage bar for {meter}"
    return int(row[1]), int(row[2]), int(row[3])


def fresh(tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


# --- What each persona sees ------------------------------------------------------------------------


def test_the_owner_sees_usage_against_quota_and_can_upgrade(owner, tenant, other_tenant, fake_stripe):
    usage.record(tenant.pk, usage.EVENTS, 4)  # free plan: 5 events in the test plans
    usage.record(tenant.pk, usage.RECOMMENDATIONS, 1)
    usage.record(other_tenant.pk, usage.EVENTS, 99)  # another shop's usage never shows
    response = client_for(owner).get("/billing")
    assert response.status_code == 200
    html = response.content.decode()
    assert bar(html, "events") == (4, 5, 80)
    assert bar(html, "recommendations") == (1, 5, 20)
    assert 'class="progress-fill warn"' in html  # 80 %: close to the hard limit
    assert "Upgrade to Growth" in html and "Upgrade to Scale" in html
    assert 'href="/billing"' in html and "Coming soon" not in html.split('href="/billing"')[1][:200]


def test_a_reached_hard_limit_is_shown_as_such(owner, tenant, fake_stripe):
    usage.record(tenant.pk, usage.EVENTS, 9)
    html = client_for(owner).get("/billing").content.decode()
    assert bar(html, "events") == (9, 5, 100)
    assert "limit reached: further requests are refused" in html


def test_a_paid_shop_sees_overage_not_a_limit(owner, tenant, fake_stripe):
    Tenant.objects.filter(pk=tenant.pk).update(
        plan="growth", stripe_customer_id="cus_X", stripe_subscription_id="sub_X", subscription_status="active"
    )
    usage.record(tenant.pk, usage.EVENTS, 130)
    html = client_for(owner).get("/billing").content.decode()
    assert bar(html, "events") == (130, 100, 100)
    assert "30 over the included quota, billed as overage" in html
    assert 'id="open-portal"' in html
    assert "Upgrade to Scale" not in html and "Switch plans in" in html  # a second subscription is never sold


def test_the_member_sees_the_page_read_only(member, tenant, fake_stripe):
    usage.record(tenant.pk, usage.EVENTS, 2)
    html = client_for(member).get("/billing").content.decode()
    assert bar(html, "events") == (2, 5, 40)
    assert "Read-only" in html and "An owner can upgrade." in html
    assert CHECKOUT not in html and PORTAL not in html


def test_the_member_may_not_start_checkout_or_open_the_portal(member, tenant, fake_stripe):
    Tenant.objects.filter(pk=tenant.pk).update(stripe_customer_id="cus_Member")
    client = client_for(member)
    assert client.post(CHECKOUT, {"plan": "growth"}).status_code == 403
    assert client.post(PORTAL).status_code == 403
    assert fake_stripe.requests == []


def test_the_outsider_only_ever_sees_and_bills_their_own_shop(outsider, tenant, other_tenant, fake_stripe):
    usage.record(tenant.pk, usage.EVENTS, 3)
    client = client_for(outsider)
    session = client.session
    session[SESSION_KEY] = tenant.pk  # a forged shop choice
    session.save()
    html = client.get("/billing").content.decode()
    assert "Shop B" in html and "Shop A" not in html
    assert bar(html, "events") == (0, 5, 0)
    response = client.post(CHECKOUT, {"plan": "growth"})
    assert response.status_code == 303
    (created,) = fake_stripe.checkout_sessions
    assert created["client_reference_id"] == str(other_tenant.pk)
    assert fresh(tenant).stripe_customer_id is None and fresh(other_tenant).stripe_customer_id


def test_anonymous_visitors_are_sent_to_log_in(client, fake_stripe):
    for path in ("/billing",):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login")
    assert client.post(CHECKOUT, {"plan": "growth"}).status_code == 302
    assert fake_stripe.requests == []


# --- Checkout and portal ---------------------------------------------------------------------------


def test_checkout_creates_the_customer_once_and_sells_the_plans_prices(owner, tenant, fake_stripe):
    client = client_for(owner)
    response = client.post(CHECKOUT, {"plan": "growth"})
    assert response.status_code == 303
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    customer_id = fresh(tenant).stripe_customer_id
    assert customer_id in fake_stripe.customers
    customer = fake_stripe.customers[customer_id]
    assert (customer["email"], customer["metadata"]) == (owner.email, {"tenant_id": str(tenant.pk), "slug": "shop-a"})
    (session,) = fake_stripe.checkout_sessions
    assert session["mode"] == "subscription" and session["customer"] == customer_id
    assert session["line_items"] == [
        {"price": "price_growth_flat", "quantity": "1"},
        {"price": "price_growth_recs"},
        {"price": "price_growth_events"},
    ]
    assert session["subscription_data"]["metadata"] == {"tenant_id": str(tenant.pk), "plan": "growth"}
    assert session["success_url"] == "http://testserver/billing?checkout=success"
    assert session["cancel_url"] == "http://testserver/billing?checkout=cancelled"
    # The plan changes only when Stripe's webhook says so, not on the way back from Checkout.
    assert fresh(tenant).plan == "free"
    assert "Thank you!" in client.get("/billing?checkout=success").content.decode()
    # A second attempt (the buyer came back without paying) reuses the customer.
    assert client.post(CHECKOUT, {"plan": "scale"}).status_code == 303
    assert len(fake_stripe.calls("/v1/customers")) == 1
    assert fake_stripe.checkout_sessions[1]["line_items"][0]["price"] == "price_scale_flat"


@pytest.mark.parametrize("plan", ["free", "platinum", ""])
def test_checkout_for_a_plan_that_is_not_for_sale_is_refused(owner, fake_stripe, plan):
    client = client_for(owner)
    response = client.post(CHECKOUT, {"plan": plan})
    assert response.status_code == 302 and response["Location"] == "/billing"
    assert "Choose one of the paid plans." in client.get("/billing").content.decode()
    assert fake_stripe.requests == []


def test_a_subscribed_shop_is_sent_to_the_portal_not_a_second_checkout(owner, tenant, fake_stripe):
    Tenant.objects.filter(pk=tenant.pk).update(
        plan="growth", stripe_customer_id="cus_Sub", stripe_subscription_id="sub_1", subscription_status="past_due"
    )
    client = client_for(owner)
    client.post(CHECKOUT, {"plan": "scale"})
    assert "already has a subscription" in client.get("/billing").content.decode()
    assert fake_stripe.checkout_sessions == []


def test_the_portal_opens_for_the_shops_customer(owner, tenant, fake_stripe):
    client = client_for(owner)
    client.post(PORTAL)
    assert "no billing account yet" in client.get("/billing").content.decode()
    client.post(CHECKOUT, {"plan": "growth"})  # creates the customer
    response = client.post(PORTAL)
    assert response.status_code == 303
    assert response["Location"].startswith("https://billing.stripe.com/p/session/test_")
    (portal,) = fake_stripe.portal_sessions
    assert portal["customer"] == fresh(tenant).stripe_customer_id
    assert portal["return_url"] == "http://testserver/billing"


def test_stripe_unreachable_is_a_clear_message_not_an_error_page(owner, tenant, fake_stripe):
    fake_stripe.down = True
    client = client_for(owner)
    response = client.post(CHECKOUT, {"plan": "growth"})
    assert response.status_code == 302
    assert "Stripe could not be reached" in client.get("/billing").content.decode()
    assert fresh(tenant).stripe_customer_id is None


def test_without_stripe_configured_plans_are_shown_but_not_sold(owner, settings):
    settings.STRIPE_SECRET_KEY = None
    client = client_for(owner)
    html = client.get("/billing").content.decode()
    assert "Upgrade to" not in html and "Not available online yet." in html
    client.post(CHECKOUT, {"plan": "growth"})
    assert "cannot be bought online yet" in client.get("/billing").content.decode()


# --- Payment trouble -------------------------------------------------------------------------------


def test_a_failed_payment_shows_the_grace_period_then_the_limit(owner, member, tenant, settings, fake_stripe):
    failed = timezone.now() - dt.timedelta(days=2)
    Tenant.objects.filter(pk=tenant.pk).update(
        plan="growth", stripe_customer_id="cus_Late", stripe_subscription_id="sub_L", subscription_status="past_due",
        payment_failed_at=failed,
    )
    html = client_for(owner).get("/billing").content.decode()
    assert 'id="billing-grace"' in html and "Past due" in html
    assert bar(html, "events")[1] == 100  # still the paid plan's quota
    Tenant.objects.filter(pk=tenant.pk).update(
        payment_failed_at=timezone.now() - dt.timedelta(days=settings.RECSVC_BILLING_GRACE_DAYS + 1)
    )
    html = client_for(member).get("/billing").content.decode()
    assert 'id="billing-limited"' in html and "402 Payment Required" in html
    assert "An owner of Shop A can update the payment method." in html
    assert bar(html, "events")[1] == 5  # held to the free plan's quota


def test_dates_show_their_year_only_when_it_is_not_this_one(owner, tenant, fake_stripe):
    """The page writes dates as every dashboard page does (core/dashboard/formats.py): this year's without
    the year, another year's with it. The quota's reset in December is next January: "Jan 1, <next year>"."""
    failed = timezone.now() - dt.timedelta(days=2)
    Tenant.objects.filter(pk=tenant.pk).update(
        plan="growth", stripe_customer_id="cus_Late", stripe_subscription_id="sub_L", subscription_status="past_due",
        payment_failed_at=failed, current_period_end=dt.datetime(2016, 10, 16, 14, 5, tzinfo=dt.UTC),
    )
    html = client_for(owner).get("/billing").content.decode()
    assert "Current billing period ends Oct 16, 2016." in html  # a stale period, of another year
    assert f"failed on {format_day(failed)}." in html
    resets = bounds(period_of(timezone.now()))[1]
    assert f"resets {format_day(resets)} (UTC)" in html
    assert (str(resets.year) in format_day(resets)) == (resets.year != timezone.now().year)
