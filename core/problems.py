"""RFC 7807 problem responses for every API error, with field- and row-level detail."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger(__name__)

# The database could not be reached or dropped the connection (restart, failover, network): nothing was
# done by this request, and the next one reconnects (Django closes a connection that failed this way at
# the request's end). Clients are told to retry, not that the server is broken.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DATABASE_RETRY_AFTER_S = 5
_DATABASE_DETAIL = "The database is unavailable for a moment; nothing was changed. Retry after the delay given."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class RowsInvalid(exceptions.APIException):
    """Every row of a bulk request failed validation: nothing was stored."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_rows"

    def __init__(self, rows: list[dict], detail: str = "No row of the batch is valid; nothing was stored."):
        super().__init__(detail)
        self.rows = rows


class QuotaExceeded(exceptions.APIException):
    """A plan's monthly quota is used up (429: it passes when the quota resets, given in Retry-After).

    `extra` adds machine-readable members to the problem document (meter, limit, used, resets_at...).
    """

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "quota_exceeded"

    def __init__(self, detail=None, *, extra: dict | None = None, wait: int | None = None, code=None):
        super().__init__(detail, code)
        self.extra = extra or {}
        self.wait = wait  # DRF turns it into a Retry-After header


class PaymentRequired(QuotaExceeded):
    """Limited because the shop's payment failed and its grace period is over: paying lifts it."""

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    default_code = "payment_required"


_TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Server error",
    503: "Service unavailable",
}


def _body(status_code: int, detail: str, code: str, **extra) -> dict:
    return {
        "type": f"/problems/{code.replace('_', '-')}",
        "title": _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        **extra,
    }


def domain_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a domain function for a view: its Django ValidationError (per field, or about the whole object)
    becomes the API's 400 problem."""
    try:
        return fn(*args)
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise exceptions.ValidationError(exc.message_dict) from None
        raise exceptions.ValidationError({"non_field_errors": exc.messages}) from None


def problem(status_code: int, detail: str, *, code: str, **extra) -> Response:
    return Response(_body(status_code, detail, code, **extra), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _flatten_detail(detail) -> tuple[str, dict | None]:
    if isinstance(detail, dict):
        errors = {
            key: [str(m) for m in (value if isinstance(value, list) else [value])] for key, value in detail.items()
        }
        return "The request has invalid fields.", errors
    if isinstance(detail, list):
        if len(detail) == 1:
            return str(detail[0]), None
        return "The request is invalid.", {"non_field_errors": [str(m) for m in detail]}
    return str(detail), None


def problem_exception_handler(exc, context):
    # Imported here: rest_framework.views loads DRF's settings, whose parsers import this module.
    from rest_framework.views import exception_handler, set_rollback

    if isinstance(exc, DATABASE_UNAVAILABLE):
        logger.warning("database unavailable: answered 503", exc_info=exc)
        set_rollback()
        result = problem(503, _DATABASE_DETAIL, code="database_unavailable", retry_after=DATABASE_RETRY_AFTER_S)
        result["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return result
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.ValidationError):
        code = "validation_error"
    detail, errors = _flatten_detail(getattr(exc, "detail", str(exc)))
    extra = {}
    if errors:
        extra["errors"] = errors
    if isinstance(exc, RowsInvalid):
        extra["rows"] = exc.rows
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        extra["retry_after"] = round(exc.wait)
    if isinstance(exc, QuotaExceeded):
        extra.update(exc.extra, **({"retry_after": exc.wait} if exc.wait else {}))
    result = problem(response.status_code, detail, code=code, **extra)
    for header, value in response.items():
        if header.lower() not in {"content-type", "content-length"}:
            result[header] = value
    return result


def _api_path(request) -> bool:
    return request.path.startswith(("/v1/", "/webhooks/"))


def _plain_problem(status_code: int, detail: str, code: str) -> JsonResponse:
    """A problem answered outside DRF (no renderer runs there)."""
    return JsonResponse(_body(status_code, detail, code), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def not_found(request, exception=None):
    """handler404: an API client gets a problem, a person the dashboard's page (a URL no route matches,
    such as `/v1/boosts/0.5`, never reaches DRF's exception handler)."""
    if _api_path(request):
        return _plain_problem(404, "No such resource.", "not_found")
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500, likewise: a problem for API clients, never an HTML page they cannot parse.

    Django calls it while handling the exception, so `sys.exc_info()` names it: a database outage met
    outside DRF (a dashboard page, a middleware) is a 503 with Retry-After there too."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE):
        if _api_path(request):
            response = _plain_problem(503, _DATABASE_DETAIL, "database_unavailable")
        else:
            response = HttpResponse(
                "The service is unavailable for a moment. Try again in a few seconds.",
                status=503, content_type="text/plain; charset=utf-8",
            )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
    if _api_path(request):
        return _plain_problem(500, "The server failed to answer; nothing was changed by this error.", "server_error")
    return defaults.server_error(request)
