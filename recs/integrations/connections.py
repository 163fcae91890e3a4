"""Store connections: creation with a validated shop address, secret rotation, enabling and disabling,
and the one cross-tenant read the webhook endpoint needs (which tenant owns a connection uuid)."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from recs.integrations.crypto import decrypt_secret, encrypt_secret
from recs.models import AuditLog, IntegrationConnection
from tenants.context import dangerously_all_tenants

Platform = IntegrationConnection.Platform
_SHOPIFY_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*(:\d{1,5})?")


# Why a connection was disabled: by Shopify's app/uninstalled, or by the merchant (update_connection).
DISABLED_BY_UNINSTALL = "app_uninstalled"
DISABLED_BY_USER = "disabled_by_user"


class ConnectionExists(Exception):
    pass


def normalize_shop_domain(platform: str, value: str) -> str:
    """The canonical address of a store, or ValueError saying what is wrong with it.

    Shopify: the shop's permanent `name.myshopify.com` domain (what `X-Shopify-Shop-Domain` carries).
    WooCommerce: the store's base URL, `https://host[/path]`.
    """
    raw = (value or "").strip()
    if platform == Platform.SHOPIFY:
        domain = re.sub(r"^https?://", "", raw.lower()).rstrip("/")
        if not _SHOPIFY_DOMAIN.fullmatch(domain):
            raise ValueError("Use the shop's myshopify.com domain, e.g. 'my-shop.myshopify.com'.")
        return domain
    if platform == Platform.WOOCOMMERCE:
        parts = urlsplit(raw)
        host = (parts.netloc or "").lower()
        if parts.scheme not in {"http", "https"} or not _HOST.fullmatch(host) or parts.query or parts.fragment:
            raise ValueError("Use the store's base URL, e.g. 'https://shop.example.com'.")
        return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
    raise ValueError(f"Unknown platform '{platform}'.")


def store_host(connection: IntegrationConnection) -> str:
    """The host a delivery's source header must name (WooCommerce `X-WC-Webhook-Source`)."""
    address = connection.shop_domain
    return urlsplit(address).netloc.lower() if "://" in address else address


def create_connection(
    tenant_id: int, *, platform: str, shop_domain: str, secret: str, name: str = ""
) -> IntegrationConnection:
    domain = normalize_shop_domain(platform, shop_domain)
    try:
        with transaction.atomic():
            return IntegrationConnection.objects.create(
                tenant_id=tenant_id, platform=platform, shop_domain=domain, name=name,
                secret_encrypted=encrypt_secret(secret),
            )
    except IntegrityError:
        raise ConnectionExists(f"This shop already has a {platform} connection: {domain}.") from None


def update_connection(
    connection: IntegrationConnection, *, status: str | None = None, secret: str | None = None, name: str | None = None
) -> IntegrationConnection:
    fields: list[str] = []
    if secret is not None:
        connection.secret_encrypted = encrypt_secret(secret)
        fields.append("secret_encrypted")
    if name is not None:
        connection.name = name
        fields.append("name")
    if status is not None and status != connection.status:
        connection.status = status
        # Re-enabled by hand: whatever disabled it no longer applies.
        connection.disabled_reason = "" if status == IntegrationConnection.Status.ACTIVE else DISABLED_BY_USER
        fields += ["status", "disabled_reason"]
    if fields:
        connection.save(update_fields=fields)
    return connection


def disable_connection(connection: IntegrationConnection, *, reason: str) -> None:
    """Stop accepting this store's catalog and order deliveries; the data received so far is kept."""
    IntegrationConnection.objects.for_tenant(connection.tenant_id).filter(pk=connection.pk).update(
        status=IntegrationConnection.Status.DISABLED, disabled_reason=reason
    )
    AuditLog.objects.create(
        tenant_id=connection.tenant_id, action=AuditLog.Action.CONNECTION_DISABLED, subject=str(connection),
        details={"connection": str(connection.uuid), "reason": reason},
    )


def connection_secret(connection: IntegrationConnection) -> str:
    return decrypt_secret(connection.secret_encrypted)


def touch_last_delivery(connection: IntegrationConnection) -> None:
    IntegrationConnection.objects.for_tenant(connection.tenant_id).filter(pk=connection.pk).update(
        last_delivery_at=timezone.now()
    )


def find_connection_for_webhook(platform: str, connection_uuid: str) -> IntegrationConnection | None:
    """The connection a webhook URL names, whichever tenant owns it.

    A webhook carries no API key: its URL names the connection and its signature proves the sender. So
    finding the owner must look across tenants, like looking up an API key by its prefix. This is the
    one read done with the database wall lifted: a single indexed row by an unguessable uuid, whose
    tenant the caller then enters (tenant_context) before anything else is read or written.

    Only the uuid's canonical spelling (lowercase, hyphenated: the webhook URL the API hands out) names
    it: the proxy limits each connection URL's request rate (deploy/nginx), which other spellings of
    the same uuid would otherwise split.
    """
    try:
        key = uuid.UUID(connection_uuid)
    except (ValueError, TypeError, AttributeError):
        return None
    if str(key) != connection_uuid:
        return None
    with dangerously_all_tenants():
        connections = IntegrationConnection.objects.dangerously_all_tenants().select_related("tenant")
        return connections.filter(uuid=key, platform=platform).first()
