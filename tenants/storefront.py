"""Publishable keys: what a key that sits in a shop's pages may do, and from where.

A publishable key is public by design (anyone can read it in the page source), so what it can do is
fixed here, not by scopes: ask for recommendations (three GET endpoints) and send one event at a time,
from a browser whose `Origin` is one of the key's origins. A request without an Origin (a script on a
server, curl) is refused too: the Origin header is set by browsers and cannot be chosen by a page's
script, so a copied key is only usable from the shop's own pages (or by someone who forges the header
outside a browser, who then gets no more than the same recommendations and single events).

CORS (django-cors-headers, config/settings.py) is enabled on the storefront's paths only; this module's
signal handler answers whether a request's origin is one of any active publishable key's origins. The
browser's preflight carries no Authorization header, so it cannot be matched to one key; the key's own
list is then enforced on the real request (`refusal`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from tenants.models import ApiKey

# (URL name, method) of the endpoints a publishable key may call (recs/api/urls.py's router names).
ENDPOINTS = frozenset({
    ("recommendation-list", "GET"),
    ("product-similar-similar", "GET"),
    ("popular-list", "GET"),
    ("event-list", "POST"),
})
# The same endpoints as paths, for CORS (the middleware runs before URL resolution).
PATHS_REGEX = r"^/v1/(recommendations|popular|events|products/[^/]+/similar)$"
_PATHS = re.compile(PATHS_REGEX)

MAX_ORIGINS = 20
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def clean_origin(value: str) -> str:
    """`value` as a browser writes it in the Origin header (lower case, no trailing slash), or ValueError.

    https only, except plain http on this machine (localhost) for development."""
    text = value.strip().rstrip("/").lower()
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin.") from None
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if url.path or url.query or url.fragment or url.username or url.password or not host or "*" in host:
        raise ValueError(f"{value!r} is not an origin: write only scheme://host[:port], e.g. https://shop.example.")
    if url.scheme == "http" and host not in _LOCAL_HOSTS and not host.endswith(".localhost"):
        raise ValueError(f"{value!r} must be https (plain http only for localhost).")
    if url.scheme not in ("https", "http"):
        raise ValueError(f"{value!r} must be https.")
    default_port = 443 if url.scheme == "https" else 80
    return f"{url.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")


def clean_origins(values: Iterable[str]) -> list[str]:
    """The distinct cleaned origins of `values` (ValueError naming the first bad one)."""
    origins = sorted({clean_origin(v) for v in values if v.strip()})
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"At most {MAX_ORIGINS} origins per key.")
    return origins


def refusal(method: str, url_name: str | None, origin: str | None, key: ApiKey) -> str | None:
    """Why a publishable `key` may not make this request, or None when it may."""
    if (url_name, method) not in ENDPOINTS:
        return "A publishable key may only ask for recommendations and send single events."
    if not origin:
        return "A publishable key is used from a browser: the request has no Origin header."
    if origin not in key.allowed_origins:
        return f"The origin {origin} is not one of this publishable key's origins."
    return None


# Every active publishable key's origins, read again at most this often per process: the preflight's
# answer only; a new key's origins can take this long to pass a preflight in another process.
_ORIGINS_SECONDS = 10.0
_origins: tuple[float, frozenset[str]] = (0.0, frozenset())


def known_origins() -> frozenset[str]:
    global _origins
    read_at, origins = _origins
    now = time.monotonic()
    if now - read_at >= _ORIGINS_SECONDS:
        rows = ApiKey.objects.filter(
            revoked_at__isnull=True, tenant__is_active=True, scopes__contains=[ApiKey.Scope.PUBLISHABLE]
        ).values_list("allowed_origins", flat=True)
        origins = frozenset(origin for row in rows for origin in row)
        _origins = (now, origins)
    return origins


def forget_known_origins() -> None:
    """Read the origins again on the next request (a key was created or revoked in this process)."""
    global _origins
    _origins = (0.0, frozenset())


def cors_enabled(sender, request, **kwargs) -> bool:
    """django-cors-headers' `check_request_enabled`: a storefront path requested from a known origin."""
    origin = request.headers.get("origin")
    if not origin or not _PATHS.match(request.path_info):
        return False
    return origin in known_origins()
