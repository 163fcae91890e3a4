"""The address a request came from: for login throttling, sign-up limits and publishable keys' rate limit.

Behind deploy/nginx, REMOTE_ADDR is nginx's own address: every client would share one throttle, and one
attacker could lock everybody out. nginx appends the address it saw to X-Forwarded-For; anything before
that entry was written by the client and proves nothing, so only the entries the trusted proxies
appended count (RECSVC_TRUSTED_PROXY_COUNT).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None  # None: a request made in process (tests, force_login)
    proxies = settings.RECSVC_TRUSTED_PROXY_COUNT
    if proxies == 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        # Not through the expected proxies (a probe from inside the network, a misconfiguration): the
        # peer's own address is the only one known.
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-proxies]))
    except ValueError:  # not written by a proxy after all
        return remote
