"""DRF authentication by API key, and the scope permission every API view uses."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from tenants import storefront
from tenants.admission import REQUEST_ATTRIBUTE, admit
from tenants.api_keys import PUBLISHABLE_PREFIX
from tenants.client_ip import client_ip
from tenants.models import ApiKey
from tenants.ratelimit import ApiKeyRateThrottle


def raw_api_key(meta: dict) -> str | None:
    """The request's raw API key ('' when none is sent, None when the Authorization header is malformed)."""
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()
    return meta.get("HTTP_X_API_KEY", "").strip()


def publishable_refusal(request, key: ApiKey) -> str | None:
    """Why the publishable `key` may not make `request` (a DRF or Django request), or None."""
    match = getattr(request, "resolver_match", None)
    return storefront.refusal(
        request.method, match.url_name if match else None, request.META.get("HTTP_ORIGIN"), key
    )


def counts_rate(view) -> bool:
    """Whether requests to `view` count against the key's rate limit (it is throttled by key)."""
    return any(issubclass(t, ApiKeyRateThrottle) for t in getattr(view, "throttle_classes", ()))


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rsk_...` (or `X-Api-Key: rsk_...`). Sets request.auth to the ApiKey.

    A publishable key (`rpk_...`) is refused (403) outside its endpoints and origins (tenants.storefront)."""

    def authenticate(self, request):
        raw = raw_api_key(request.META)
        if raw is None:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        if not raw:
            return None
        # One Redis round trip reads the key's cache entry, counts the rate limit and reads the usage
        # counters (tenants.admission); the throttle and the quota permission use what it read.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        # A publishable key is shared by a storefront's visitors: its rate limit counts per visitor address.
        visitor = client_ip(request) if raw.startswith(PUBLISHABLE_PREFIX) else None
        admission = admit(raw, count_rate=counts_rate(view), visitor=visitor)
        if admission is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        setattr(request, REQUEST_ATTRIBUTE, admission)
        if admission.key.is_publishable:
            # Here rather than in a permission, so that no view (whatever its permissions) serves one.
            reason = publishable_refusal(request, admission.key)
            if reason is not None:
                raise exceptions.PermissionDenied(reason)
        return (None, admission.key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class HasTenantScope(permissions.BasePermission):
    """The key must carry the view's `required_scope` (admin implies every scope)."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        if key.is_publishable:
            # Its endpoints are fixed (tenants.storefront), whatever scope the view names.
            self.message = publishable_refusal(request, key) or ""
            return not self.message
        scope = getattr(view, "required_scope", None)
        if callable(scope):
            scope = scope(request)
        if scope is None:
            return True
        self.message = f"This API key lacks the '{scope}' scope."
        return key.has_scope(scope)


class ApiKeySchema(OpenApiAuthenticationExtension):
    """Documents the API key as an HTTP bearer scheme in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer rsk_...`."}
