"""The only module that calls Stripe's API (the official `stripe` library, module-level resources).

The secret key is passed per request rather than set on the `stripe` module, so nothing else in the
process can call Stripe by accident. Every create carries an idempotency key where a retry must not
create a second object.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import stripe
from django.conf import settings

NETWORK_RETRIES = 2


class BillingNotConfigured(RuntimeError):
    """STRIPE_SECRET_KEY is not set (the embedded demo)."""


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _options(idempotency_key: str | None = None) -> dict:
    if not configured():
        raise BillingNotConfigured("Stripe billing is not configured on this server (STRIPE_SECRET_KEY).")
    options = {"api_key": settings.STRIPE_SECRET_KEY, "max_network_retries": NETWORK_RETRIES}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def create_customer(*, name: str, email: str, metadata: Mapping[str, str], idempotency_key: str) -> str:
    customer = stripe.Customer.create(
        name=name, email=email, metadata=dict(metadata), **_options(idempotency_key)
    )
    return customer.id


def create_checkout_session(
    *,
    customer: str,
    line_items: list[dict],
    client_reference_id: str,
    metadata: Mapping[str, str],
    success_url: str,
    cancel_url: str,
) -> str:
    """A subscription-mode Checkout Session; returns the URL to send the buyer to."""
    session = stripe.checkout.Session.create(
        mode="subscription",
        customer=customer,
        line_items=line_items,
        client_reference_id=client_reference_id,
        metadata=dict(metadata),
        subscription_data={"metadata": dict(metadata)},
        success_url=success_url,
        cancel_url=cancel_url,
        allow_promotion_codes=True,
        **_options(),
    )
    return session.url


def create_portal_session(*, customer: str, return_url: str) -> str:
    session = stripe.billing_portal.Session.create(customer=customer, return_url=return_url, **_options())
    return session.url


def create_meter_event(
    *, event_name: str, customer: str, value: int, identifier: str, timestamp: dt.datetime
) -> None:
    """Report `value` units. `identifier` makes Stripe count the event once; it is also the idempotency
    key, so a re-send inside 24 hours replays the first answer."""
    stripe.billing.MeterEvent.create(
        event_name=event_name,
        payload={"stripe_customer_id": customer, "value": str(int(value))},
        identifier=identifier,
        timestamp=int(timestamp.timestamp()),
        **_options(identifier),
    )
