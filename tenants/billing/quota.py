"""May a shop use one more unit of a meter this month?

- free plan: a hard limit; past the quota the answer is no (HTTP 429: it passes when the month resets).
- paid plans: always yes; usage above the included quota is overage, billed through Stripe.
- payment failed and the grace period is over: limited to the free plan's quotas (HTTP 402: paying,
  not waiting, lifts it).

The check reads the tenant (cached with the API key) and at most one Redis field; if Redis is down the
request is served (degrade, never fail), like the rate limiter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from tenants.billing import usage
from tenants.billing.periods import bounds, period_of
from tenants.billing.plans import Meter
from tenants.billing.state import billing_state
from tenants.models import Tenant

OVER_QUOTA = 429
PAYMENT_REQUIRED = 402


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    status: int = 200
    code: str = ""
    detail: str = ""
    retry_after: int | None = None
    fields: dict = field(default_factory=dict)  # machine-readable facts for the problem response


ALLOWED = QuotaDecision(allowed=True)
# check(used=READ_LIVE): read the live counter (the default); an int: the usage already read by the
# caller (the API's admission round trip); None: the counters could not be reached (allowed).
READ_LIVE = object()


def _date(moment: dt.datetime) -> str:
    return f"{moment:%B} {moment.day}, {moment:%Y}"


def check(tenant: Tenant, meter: str, *, now: dt.datetime | None = None, used: object = READ_LIVE) -> QuotaDecision:
    meter = Meter(meter)
    now = now or timezone.now()
    state = billing_state(tenant, now)
    if state.effective.overage:
        return ALLOWED
    limit = state.effective.quota(meter)
    if used is READ_LIVE:
        used = usage.live(tenant.pk, meter, period_of(now))
    if used is None or used < limit:
        return ALLOWED
    resets_at = bounds(period_of(now))[1]
    facts = {
        "meter": meter.value,
        "limit": limit,
        "used": used,
        "plan": state.effective.key,
        "resets_at": resets_at.isoformat().replace("+00:00", "Z"),
    }
    if state.limited:
        return QuotaDecision(
            allowed=False,
            status=PAYMENT_REQUIRED,
            code="payment_required",
            detail=(
                f"Payment for the {state.plan.name} plan failed on {_date(state.payment_failed_at)} and the grace "
                f"period ended on {_date(state.grace_ends_at)}, so this shop is limited to the "
                f"{state.effective.name} plan's {limit:,} {meter.label} a month; it has used {used:,}. "
                "An owner can update the payment method on the dashboard's Billing page to lift the limit."
            ),
            fields={**facts, "payment_failed_at": state.payment_failed_at.isoformat(),
                    "grace_ended_at": state.grace_ends_at.isoformat()},
        )
    return QuotaDecision(
        allowed=False,
        status=OVER_QUOTA,
        code="quota_exceeded",
        detail=(
            f"The {state.effective.name} plan includes {limit:,} {meter.label} a month and this shop has used "
            f"{used:,}. The quota resets on {_date(resets_at)} (00:00 UTC); upgrade on the dashboard's Billing "
            "page to continue now."
        ),
        retry_after=max(1, int((resets_at - now).total_seconds())),
        fields=facts,
    )
