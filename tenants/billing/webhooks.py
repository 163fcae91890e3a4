"""Apply verified Stripe events to the shops: plan, subscription status, period, payment failures.

Each event is applied once (StripeEvent, unique by id, inserted in the same transaction as its
effects: a failure rolls both back and Stripe's redelivery applies it again). Stripe does not deliver
in order, so an event older than the last one applied to the same fields changes nothing.

Handled: customer.subscription.created/updated/deleted, invoice.paid, invoice.payment_failed.
Every other type is acknowledged and recorded as ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from tenants.api_keys import forget_cached_keys
from tenants.billing import plans
from tenants.billing.models import StripeEvent
from tenants.models import Tenant

log = logging.getLogger(__name__)
Result = StripeEvent.Result
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,250}")
# A subscription in these states no longer entitles the shop to its paid plan.
_ENDED = frozenset({"canceled", "incomplete_expired", "paused"})
# ...and in these it does (past_due/unpaid: the grace period decides what the shop may still do).
_ENTITLED = frozenset({"active", "trialing", "past_due", "unpaid"})


class MalformedEvent(ValueError):
    """A correctly signed body that is not a Stripe event this code can read."""


@dataclass(frozen=True)
class Outcome:
    event_id: str
    result: str  # a StripeEvent.Result value, or "duplicate"
    tenant_id: int | None = None


def _ts(value) -> dt.datetime:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedEvent(f"expected a unix timestamp, got {value!r}")
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


def _id_of(value) -> str | None:
    """An id field that may be expanded into an object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _tenant_for(customer_id: str | None, metadata: dict | None) -> Tenant | None:
    """The shop (locked) by its Stripe customer id; else by the tenant id our Checkout put in the
    metadata, if that shop has no customer yet (it is then linked)."""
    if customer_id:
        tenant = Tenant.objects.select_for_update().filter(stripe_customer_id=customer_id).first()
        if tenant is not None:
            return tenant
    raw = (metadata or {}).get("tenant_id")
    if customer_id and isinstance(raw, str) and raw.isdigit():
        tenant = Tenant.objects.select_for_update().filter(pk=int(raw), stripe_customer_id__isnull=True).first()
        if tenant is not None:
            tenant.stripe_customer_id = customer_id
            return tenant
    return None


def _period(subscription: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The current billing period: on the items since API 2025-03-31, on the subscription before."""
    items = (subscription.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if isinstance(i.get("current_period_start"), int)]
    ends = [i["current_period_end"] for i in items if isinstance(i.get("current_period_end"), int)]
    start = min(starts) if starts else subscription.get("current_period_start")
    end = max(ends) if ends else subscription.get("current_period_end")
    return (_ts(start) if start is not None else None, _ts(end) if end is not None else None)


def _plan_of(subscription: dict) -> plans.Plan | None:
    for item in (subscription.get("items") or {}).get("data") or []:
        plan = plans.for_price(_id_of(item.get("price")) or "")
        if plan is not None:
            return plan
    return None


def _subscription(obj: dict, created: dt.datetime, *, deleted: bool) -> tuple[str, Tenant | None]:
    sub_id, status = _id_of(obj.get("id")), obj.get("status")
    if not sub_id or not isinstance(status, str):
        raise MalformedEvent("a subscription needs an id and a status")
    tenant = _tenant_for(_id_of(obj.get("customer")), obj.get("metadata"))
    if tenant is None:
        return Result.UNKNOWN_CUSTOMER, None
    if tenant.subscription_event_at and created < tenant.subscription_event_at:
        return Result.STALE, tenant
    if tenant.stripe_subscription_id and sub_id != tenant.stripe_subscription_id:
        if deleted or status in _ENDED:
            return Result.STALE, tenant  # the end of a subscription the shop has since replaced
        log.warning("tenant %s: subscription %s replaces %s", tenant.pk, sub_id, tenant.stripe_subscription_id)
    tenant.stripe_subscription_id = sub_id
    tenant.subscription_status = "canceled" if deleted and status not in _ENDED else status
    tenant.current_period_start, tenant.current_period_end = _period(obj)
    if deleted or status in _ENDED:
        tenant.plan = plans.FREE
        tenant.payment_failed_at = None
    elif status in _ENTITLED:
        plan = _plan_of(obj)
        if plan is None:
            log.error("tenant %s: subscription %s has no price of a configured plan", tenant.pk, sub_id)
        else:
            tenant.plan = plan.key
        if status == "active" or status == "trialing":
            tenant.payment_failed_at = None
        elif tenant.payment_failed_at is None:
            tenant.payment_failed_at = created  # past_due without the invoice event (yet)
    # "incomplete": the first payment is pending; the shop stays on its plan until it succeeds.
    tenant.subscription_event_at = created
    tenant.save()
    return Result.APPLIED, tenant


def _invoice(obj: dict, created: dt.datetime, *, paid: bool) -> tuple[str, Tenant | None]:
    tenant = _tenant_for(_id_of(obj.get("customer")), None)
    if tenant is None:
        return Result.UNKNOWN_CUSTOMER, None
    if tenant.payment_event_at and created < tenant.payment_event_at:
        return Result.STALE, tenant
    if paid:
        tenant.payment_failed_at = None
    elif tenant.payment_failed_at is None:
        # Stripe retries the invoice; the grace period runs from the first failure, retries do not extend it.
        tenant.payment_failed_at = created
    tenant.payment_event_at = created
    tenant.save()
    return Result.APPLIED, tenant


_HANDLERS: dict[str, Callable[[dict, dt.datetime], tuple[str, Tenant | None]]] = {
    "customer.subscription.created": lambda o, c: _subscription(o, c, deleted=False),
    "customer.subscription.updated": lambda o, c: _subscription(o, c, deleted=False),
    "customer.subscription.deleted": lambda o, c: _subscription(o, c, deleted=True),
    "invoice.paid": lambda o, c: _invoice(o, c, paid=True),
    "invoice.payment_failed": lambda o, c: _invoice(o, c, paid=False),
}


def process(event: dict) -> Outcome:
    """Apply one verified event (a plain dict). Raises MalformedEvent for a body that is not one."""
    event_id, event_type = event.get("id"), event.get("type")
    if event.get("object") != "event" or not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise MalformedEvent("not a Stripe event")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
        raise MalformedEvent("the event has no type")
    created = _ts(event.get("created"))
    obj = (event.get("data") or {}).get("object")
    handler = _HANDLERS.get(event_type)
    if handler is not None and not isinstance(obj, dict):
        raise MalformedEvent("the event has no data.object")
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(id=event_id, type=event_type, created=created,
                                                    result=Result.IGNORED)
        except IntegrityError:
            return Outcome(event_id, "duplicate")
        if handler is None:
            return Outcome(event_id, Result.IGNORED)
        result, tenant = handler(obj, created)
        record.result, record.tenant = result, tenant
        record.save(update_fields=["result", "tenant"])
    if result == Result.APPLIED:
        # API keys cache their tenant for a minute: the new plan or limit must bind on the next request.
        forget_cached_keys(tenant)
    if result == Result.UNKNOWN_CUSTOMER:
        log.warning("Stripe event %s (%s) is for a customer no shop has", event_id, event_type)
    return Outcome(event_id, result, tenant.pk if tenant else None)
