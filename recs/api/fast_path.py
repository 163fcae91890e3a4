"""Answering the hottest requests before DRF (a recommendation of the hot shape, cached or computed; a
single event).

DRF's per-request machinery (its request wrapper, content negotiation, authentication and permission
classes, renderer) costs about as much CPU as the rest of a cached answer, and about a twentieth of an
uncached one. A view's fast path answers the
common, plainly valid request itself and hands anything else to DRF, which reuses the admission made here
(tenants.auth.admit_before_drf): a request is counted against its rate limit once, and every refusal
(bad key, scope, rate limit, quota, invalid input) is still DRF's problem response.
"""

from __future__ import annotations

from typing import Any

import msgspec
from django.http import HttpResponse

from recs.api.quota import quota_decision
from tenants.admission import Admission, Prefetch
from tenants.auth import admit_before_drf, raw_api_key
from tenants.billing.plans import Meter
from tenants.ratelimit import within_limit

# Single events are a few hundred bytes; anything larger goes through DRF's size-capped parser.
MAX_FAST_BODY_BYTES = 64 * 1024


def admit(request, view, *, meter: Meter, prefetch: Prefetch | None = None) -> Admission | None:
    """The request's admission if the fast path may answer it: a key that is admitted, carries the view's
    `required_scope`, and is within its rate limit and the shop's `meter` quota. None: hand it to DRF."""
    raw = raw_api_key(request.META)
    if not raw:
        return None
    admission = admit_before_drf(request, view, raw, prefetch)
    if admission is None or not admission.key.has_scope(view.required_scope):
        return None
    if within_limit(admission) is not True:
        return None
    if not quota_decision(admission.key, admission, meter).allowed:
        return None
    return admission


def small_json_body(request) -> bytes | None:
    """The body of a small JSON request (declared length, JSON content type), else None."""
    meta = request.META
    if meta.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
        return None
    length = meta.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or not 0 < int(length) <= MAX_FAST_BODY_BYTES:
        return None
    return request.body


def json_response(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(msgspec.json.encode(body), status=status, content_type="application/json")
