"""Self-service billing for the dashboard: upgrade through Stripe Checkout, manage in the Customer Portal.

Plans change only when Stripe says so (webhooks.py); these functions only open Stripe's hosted pages.
"""

from __future__ import annotations

import hashlib

from django.db import transaction

from tenants.billing import plans, stripe_api
from tenants.billing.state import has_live_subscription
from tenants.models import Tenant


class CheckoutRefused(ValueError):
    """A request the shop's state does not allow; the message is shown to the user."""


def ensure_customer(tenant_id: int, *, email: str) -> str:
    """The shop's Stripe customer id, created on first use (under a row lock, so only once)."""
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        if tenant.stripe_customer_id:
            return tenant.stripe_customer_id
        # The same request retried (after a crash before the save below) gets the same customer back.
        digest = hashlib.sha256(email.encode()).hexdigest()[:16]
        tenant.stripe_customer_id = stripe_api.create_customer(
            name=tenant.name,
            email=email,
            metadata={"tenant_id": str(tenant.pk), "slug": tenant.slug},
            idempotency_key=f"recsvc-customer-{tenant.pk}-{digest}",
        )
        tenant.save(update_fields=["stripe_customer_id"])
        return tenant.stripe_customer_id


def start_checkout(tenant_id: int, plan_key: str, *, email: str, success_url: str, cancel_url: str) -> str:
    """The Checkout URL for subscribing the shop to `plan_key`."""
    plan = plans.all_plans().get(plan_key)
    if plan is None or not plan.is_paid:
        raise CheckoutRefused("Choose one of the paid plans.")
    if not stripe_api.configured() or not plan.purchasable:
        raise CheckoutRefused(f"The {plan.name} plan cannot be bought online yet; please contact us.")
    tenant = Tenant.objects.get(pk=tenant_id)
    if has_live_subscription(tenant):
        # A second Checkout would start a second subscription; plan changes belong to the portal.
        raise CheckoutRefused("This shop already has a subscription: change or cancel it in the billing portal.")
    customer = ensure_customer(tenant_id, email=email)
    metadata = {"tenant_id": str(tenant_id), "plan": plan.key}
    return stripe_api.create_checkout_session(
        customer=customer,
        line_items=plan.checkout_line_items(),
        client_reference_id=str(tenant_id),
        metadata=metadata,
        success_url=success_url,
        cancel_url=cancel_url,
    )


def open_portal(tenant_id: int, *, return_url: str) -> str:
    """The Customer Portal URL (payment methods, invoices, plan changes, cancellation)."""
    if not stripe_api.configured():
        raise CheckoutRefused("Online billing is not available on this server.")
    tenant = Tenant.objects.get(pk=tenant_id)
    if not tenant.stripe_customer_id:
        raise CheckoutRefused("This shop has no billing account yet: choose a paid plan first.")
    return stripe_api.create_portal_session(customer=tenant.stripe_customer_id, return_url=return_url)
