"""Structured logs: one JSON object per line (python-json-logger), each carrying the request id and the shop
of the request that wrote it.

The request id comes from the caller's `X-Request-ID` (a proxy or load balancer that sets one ties its own
log to ours) or is a new uuid; it is echoed in the response's `X-Request-ID`. The shop is the tenant scope
the code runs in (a dotted callable given to the filter by config/settings.py, so core knows no tenant)
or, for the request line written when the answer leaves, the tenant of the request's API key.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

request_id: ContextVar[str] = ContextVar("recsvc_request_id", default="")
_request_shop: ContextVar[str] = ContextVar("recsvc_request_shop", default="")
# What a caller may set as the id: anything else (too long, spaces, quotes) is replaced by a new one, so a
# client cannot forge log structure or flood the logs with large values.
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("recsvc.request")


class ContextFilter(logging.Filter):
    """Adds `request_id` and `shop` to every record (empty outside a request or a tenant scope)."""

    def __init__(self, shop: str | None = None) -> None:
        super().__init__()
        self._shop: Callable[[], str] | None = import_string(shop) if shop else None

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        scope = self._shop() if self._shop is not None else ""
        if not hasattr(record, "shop"):
            record.shop = scope if scope not in ("", "*") else _request_shop.get()
        return True


def _shop_of(request: HttpRequest) -> str:
    # DRF copies the authentication's result onto the Django request: the API key, with its tenant.
    tenant_id = getattr(getattr(request, "auth", None), "tenant_id", None)
    return str(tenant_id) if tenant_id is not None else ""


class RequestIdMiddleware:
    """Sets the request id for the request's log records, answers it in `X-Request-ID`, and writes one
    `recsvc.request` line per request (INFO: shown when RECSVC_ACCESS_LOG is on)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        rid = given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        shop_token = _request_shop.set("")
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = rid
            if access_log.isEnabledFor(logging.INFO):
                _request_shop.set(_shop_of(request))
                access_log.info(
                    "request",
                    extra={"method": request.method, "path": request.path, "status": response.status_code,
                           "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
                )
            return response
        finally:
            _request_shop.reset(shop_token)
            request_id.reset(token)
