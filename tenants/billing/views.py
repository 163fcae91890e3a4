"""POST /webhooks/stripe: Stripe's signed event deliveries.

The signature (`Stripe-Signature`: t=<unix time>,v1=<HMAC-SHA256 of "t.body" with the endpoint secret>) is
checked by the official library before the body is even parsed; a bad, missing or stale one gets 400 and
changes nothing. A verified event answers 200 whether it was applied, already seen (a redelivery) or of
a type this service ignores, so that Stripe stops redelivering; an error while applying answers 500 and
Stripe retries later. Errors are RFC 7807 problem documents, like the API's.
"""

from __future__ import annotations

import logging

import stripe
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tenants.billing import webhooks

log = logging.getLogger(__name__)


def _problem(status: int, code: str, title: str, detail: str) -> JsonResponse:
    body = {"type": f"/problems/{code.replace('_', '-')}", "title": title, "status": status, "detail": detail}
    return JsonResponse(body, status=status, content_type="application/problem+json")


@csrf_exempt  # authenticated by the signature, not a session
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        return _problem(503, "billing_not_configured", "Service unavailable",
                        "Stripe webhooks are not configured on this server.")
    try:
        event = stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature"),
            secret,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except stripe.SignatureVerificationError as exc:
        log.warning("Stripe webhook refused: %s", exc.user_message or exc)
        return _problem(400, "invalid_signature", "Invalid signature",
                        "The Stripe-Signature header is missing, malformed, too old or does not match the body.")
    except (ValueError, TypeError, AttributeError):  # a correctly signed body that is not a JSON object
        return _problem(400, "malformed_event", "Invalid request", "The body is not a JSON Stripe event.")
    try:
        outcome = webhooks.process(event.to_dict())
    except webhooks.MalformedEvent as exc:
        return _problem(400, "malformed_event", "Invalid request", f"Not a readable Stripe event: {exc}.")
    return JsonResponse({"received": True, "id": outcome.event_id, "result": outcome.result})
