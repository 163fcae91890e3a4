"""The Billing page: plan and payment status, this month's usage against quota, upgrade and portal.

Only owners may open Stripe Checkout or the Customer Portal (members see the same page read-only). The
plan itself changes only when Stripe's webhook says so, never on the redirect back from Checkout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.dashboard.pages import render_page
from tenants.billing import checkout, plans, stripe_api, usage
from tenants.billing.periods import bounds, period_of
from tenants.billing.plans import Meter
from tenants.billing.state import billing_state, has_live_subscription
from tenants.dashboard.shop import require_owner, shop_view
from tenants.models import Tenant

log = logging.getLogger(__name__)
WARN_AT_PERCENT = 80


@dataclass(frozen=True)
class UsageBar:
    meter: str
    label: str
    used: int
    limit: int
    hard: bool  # a hard limit (free plan, or limited after a failed payment)

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100 if self.used else 0
        return round(100 * self.used / self.limit)

    @property
    def width(self) -> int:
        return min(100, self.percent)

    @property
    def over(self) -> int:
        return max(0, self.used - self.limit)

    @property
    def level(self) -> str:
        """CSS modifier of the bar: failed (hard limit reached), warn (close to it, or overage), or none."""
        if self.hard and self.used >= self.limit:
            return "failed"
        if self.percent >= WARN_AT_PERCENT:
            return "warn"
        return ""


@shop_view
def billing(request: HttpRequest) -> HttpResponse:
    tenant = Tenant.objects.get(pk=request.shop.tenant.pk)
    now = timezone.now()
    state = billing_state(tenant, now)
    period = period_of(now)
    used = usage.totals(tenant.pk, period)
    bars = [
        UsageBar(m.value, m.label.capitalize(), used[m.value], state.effective.quota(m), not state.effective.overage)
        for m in Meter
    ]
    checkout_result = request.GET.get("checkout", "")
    return render_page(
        request,
        "dashboard/billing.html",
        "billing",
        {
            "tenant": tenant,
            "state": state,
            "bars": bars,
            "period_start": bounds(period)[0],
            "resets_at": bounds(period)[1],
            "plans": list(plans.all_plans().values()),
            "subscribed": has_live_subscription(tenant),
            "stripe_ready": stripe_api.configured(),
            "checkout_result": checkout_result if checkout_result in ("success", "cancelled") else "",
        },
    )


def _back(request: HttpRequest, query: str = "") -> str:
    return request.build_absolute_uri(reverse("dashboard:billing")) + query


def _stripe_failed(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.error("Stripe call from the billing page failed: %s", exc)
    messages.error(request, "Stripe could not be reached just now. Nothing was charged; please try again shortly.")
    return redirect("dashboard:billing")


@shop_view
@require_POST
def billing_checkout(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    try:
        url = checkout.start_checkout(
            request.shop.tenant.pk,
            request.POST.get("plan", ""),
            email=request.user.email or request.user.get_username(),
            success_url=_back(request, "?checkout=success"),
            cancel_url=_back(request, "?checkout=cancelled"),
        )
    except checkout.CheckoutRefused as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:billing")
    except (stripe.StripeError, stripe_api.BillingNotConfigured) as exc:
        return _stripe_failed(request, exc)
    return HttpResponseRedirect(url, status=303)


@shop_view
@require_POST
def billing_portal(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    try:
        url = checkout.open_portal(request.shop.tenant.pk, return_url=_back(request))
    except checkout.CheckoutRefused as exc:
        messages.error(request, str(exc))
        return redirect("dashboard:billing")
    except (stripe.StripeError, stripe_api.BillingNotConfigured) as exc:
        return _stripe_failed(request, exc)
    return HttpResponseRedirect(url, status=303)
