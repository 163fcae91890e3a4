"""A shop's billing state, derived from its Tenant row and the clock (no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from tenants.billing import plans
from tenants.models import Tenant

# Stripe subscription statuses in which the subscription still exists and bills.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid", "paused"})


def grace_ends_at(tenant: Tenant) -> dt.datetime | None:
    if tenant.payment_failed_at is None:
        return None
    return tenant.payment_failed_at + dt.timedelta(days=settings.RECSVC_BILLING_GRACE_DAYS)


def is_limited(tenant: Tenant, now: dt.datetime) -> bool:
    """Payment failed and the grace period is over: the shop gets the free plan's quotas, hard."""
    ends = grace_ends_at(tenant)
    return ends is not None and now >= ends


def has_live_subscription(tenant: Tenant) -> bool:
    return bool(tenant.stripe_subscription_id) and tenant.subscription_status in LIVE_STATUSES


@dataclass(frozen=True)
class BillingState:
    plan: plans.Plan  # the plan the shop pays for
    effective: plans.Plan  # the plan whose limits apply now (free when limited)
    status: str  # "", or Stripe's subscription status
    payment_failed_at: dt.datetime | None
    grace_ends_at: dt.datetime | None
    limited: bool

    @property
    def in_grace(self) -> bool:
        return self.payment_failed_at is not None and not self.limited


def billing_state(tenant: Tenant, now: dt.datetime) -> BillingState:
    plan = plans.get(tenant.plan)
    limited = is_limited(tenant, now)
    return BillingState(
        plan=plan,
        effective=plans.free() if limited else plan,
        status=tenant.subscription_status,
        payment_failed_at=tenant.payment_failed_at,
        grace_ends_at=grace_ends_at(tenant),
        limited=limited,
    )
