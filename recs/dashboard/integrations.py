"""The Store connections page: each Shopify / WooCommerce connection, its webhook URL and status, and the
latest webhook deliveries with what each one did. Read-only: connections are managed at /v1/integrations."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from core.dashboard.pages import render_page
from recs.models import IntegrationConnection, WebhookDelivery
from tenants.dashboard.shop import shop_view

RECENT_DELIVERIES = 25


def _summary(result: dict) -> str:
    """'created 1 · events_stored 2': the non-zero counts and ids of a delivery's result."""
    if result.get("ignored"):
        return str(result["ignored"])
    return " · ".join(f"{k} {v}" for k, v in result.items() if v and not isinstance(v, (dict, list)))


@shop_view
def integrations(request: HttpRequest) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    connections = list(IntegrationConnection.objects.for_tenant(tenant_id).order_by("platform", "shop_domain"))
    for connection in connections:
        path = reverse(f"integrations:{connection.platform}", args=[str(connection.uuid)])
        connection.webhook_url = request.build_absolute_uri(path)
    deliveries = list(
        WebhookDelivery.objects.for_tenant(tenant_id).select_related("connection")
        .defer("body").order_by("-received_at", "-pk")[:RECENT_DELIVERIES]
    )
    for delivery in deliveries:
        delivery.summary = _summary(delivery.result)
    return render_page(request, "dashboard/integrations.html", "integrations",
                 {"connections": connections, "deliveries": deliveries})
