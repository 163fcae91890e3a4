"""The Privacy page: what is shared, the shop's choice (owners change it, members read), its budget ledger."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.dashboard.pages import render_page
from privacy import explanation
from privacy.optin import set_opted_in
from privacy.views_data import summary
from tenants.dashboard.shop import require_owner, shop_view


@shop_view
def privacy(request: HttpRequest) -> HttpResponse:
    return render_page(request, "dashboard/privacy.html", "privacy",
                       {"privacy": summary(request.shop.tenant.pk), "explanation": explanation.as_dict()})


@require_POST
@shop_view
def privacy_choice(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    opted_in = request.POST.get("opted_in") == "1"
    set_opted_in(request.shop.tenant.pk, opted_in, at=timezone.now())
    messages.success(request, "Your shop now takes part in the shared statistics." if opted_in else
                     "Your shop no longer contributes. Statistics already released stay released.")
    return redirect("dashboard:privacy")
