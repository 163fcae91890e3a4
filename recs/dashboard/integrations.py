"""The Store connections page: each Shopify / WooCommerce connection, its webhook URL and status, and the
latest webhook deliveries with what each one did. Owners create a connection here (platform, store address,
webhook secret) through recs.integrations.connections.create_connection, as POST /v1/integrations does, and
are shown the webhook URL to paste into the store."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from core.dashboard.pages import render_page
from recs.integrations import shopify, woocommerce
from recs.integrations.connections import ConnectionExists, create_connection
from recs.models import IntegrationConnection, WebhookDelivery
from tenants.dashboard.shop import require_owner, shop_view

RECENT_DELIVERIES = 25
Platform = IntegrationConnection.Platform
# The webhook topics each platform's store should send (those the service handles).
TOPICS = {Platform.SHOPIFY: sorted(shopify.HANDLERS), Platform.WOOCOMMERCE: sorted(woocommerce.HANDLERS)}


class ConnectionForm(forms.Form):
    """What POST /v1/integrations takes, with its limits (recs/integrations/api.py)."""

    platform = forms.ChoiceField(label="Platform", choices=[(Platform.SHOPIFY, "Shopify"),
                                                             (Platform.WOOCOMMERCE, "WooCommerce")])
    shop_domain = forms.CharField(
        label="Store address", max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "my-shop.myshopify.com or https://shop.example.com",
                                      "autocomplete": "off", "spellcheck": "false"}),
        help_text="Shopify: the shop's myshopify.com domain. WooCommerce: the store's base URL.",
    )
    secret = forms.CharField(
        label="Webhook secret", min_length=8, max_length=500, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Shopify: the app's client secret. WooCommerce: the secret you give the webhooks. Stored "
                  "encrypted and never shown again.",
    )
    name = forms.CharField(label="Name (optional)", max_length=100, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "e.g. Flagship store"}))


def _summary(result: dict) -> str:
    """'created 1 · events_stored 2': the non-zero counts and ids of a delivery's result."""
    if result.get("ignored"):
        return str(result["ignored"])
    return " · ".join(f"{k} {v}" for k, v in result.items() if v and not isinstance(v, (dict, list)))


def webhook_url(request: HttpRequest, connection: IntegrationConnection) -> str:
    return request.build_absolute_uri(reverse(f"integrations:{connection.platform}", args=[str(connection.uuid)]))


def _page(request: HttpRequest, form: ConnectionForm | None = None, status: int = 200) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    connections = list(IntegrationConnection.objects.for_tenant(tenant_id).order_by("platform", "shop_domain"))
    for connection in connections:
        connection.webhook_url = webhook_url(request, connection)
    deliveries = list(
        WebhookDelivery.objects.for_tenant(tenant_id).select_related("connection")
        .defer("body").order_by("-received_at", "-pk")[:RECENT_DELIVERIES]
    )
    for delivery in deliveries:
        delivery.summary = _summary(delivery.result)
    created = next((c for c in connections if str(c.uuid) == request.GET.get("created")), None)
    response = render_page(request, "dashboard/integrations.html", "integrations", {
        "connections": connections, "deliveries": deliveries, "form": form or ConnectionForm(),
        "created": created, "topics": TOPICS.get(created.platform, []) if created else [],
    })
    response.status_code = status
    return response


@shop_view
def integrations(request: HttpRequest) -> HttpResponse:
    return _page(request)


@shop_view
@require_POST
def connection_create(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    form = ConnectionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            connection = create_connection(
                request.shop.tenant.pk, platform=data["platform"], shop_domain=data["shop_domain"],
                secret=data["secret"], name=data["name"],
            )
        except ValueError as exc:  # the store address, in the domain's words
            form.add_error("shop_domain", str(exc))
        except ConnectionExists as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{connection.get_platform_display()} store {connection.shop_domain} connected.")
            return redirect(f"{reverse('dashboard:integrations')}?created={connection.uuid}#created")
    return _page(request, form, status=400)
