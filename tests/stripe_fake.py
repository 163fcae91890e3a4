"""Stripe, faked at the `stripe` library's HTTP client edge, and webhook payloads signed for real.

`FakeStripe` is a `stripe.HTTPClient`: the library builds, encodes and authenticates every request as it
would for api.stripe.com, and parses the answers, which are shaped like the API reference's examples
(Customer, Checkout Session, Billing Portal Session, Billing Meter Event, error objects). It keeps
Stripe's rules that matter here: the secret key must match, prices and customers must exist, metered
prices take no quantity, an idempotency key replays its first answer (and refuses other parameters), and
a meter event identifier counts once.

Failure modes: `lose_responses = n` makes the next n requests reach "Stripe" (and take effect) but lose
the answer, as a connection reset or a crashed worker would; `down = True` refuses connections.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import stripe
from django.conf import settings

SECRET_KEY = "sk_test_51FakeRecsvcKey"
WEBHOOK_SECRET = "whsec_test_recsvc_fake_secret"
PRICES = {
    # flat subscription prices (licensed) and metered overage prices, one per meter
    "price_growth_flat": {"usage_type": "licensed", "unit_amount": 9900},
    "price_growth_recs": {"usage_type": "metered", "meter": "recsvc_recommendation_requests"},
    "price_growth_events": {"usage_type": "metered", "meter": "recsvc_ingested_events"},
    "price_scale_flat": {"usage_type": "licensed", "unit_amount": 49900},
    "price_scale_recs": {"usage_type": "metered", "meter": "recsvc_recommendation_requests"},
    "price_scale_events": {"usage_type": "metered", "meter": "recsvc_ingested_events"},
}
METER_EVENT_NAMES = {"recsvc_recommendation_requests", "recsvc_ingested_events"}
_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):04d}FakeRecsvc"


def decode_form(body: str) -> dict:
    """application/x-www-form-urlencoded with Stripe's brackets (a[b][0][c]=v) -> nested dicts/lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [listify(node[k]) for k in sorted(node, key=int)]
            return {k: listify(v) for k, v in node.items()}
        return node

    return listify(root)


def _error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
           param: str | None = None) -> tuple[dict, int]:
    error = {"type": type_, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}, status


class FakeStripe(stripe.HTTPClient):
    name = "fake-stripe"

    def __init__(self, *, api_key: str = SECRET_KEY, prices: dict | None = None):
        super().__init__()
        self.api_key = api_key
        self.prices = copy.deepcopy(PRICES if prices is None else prices)
        self.requests: list[dict] = []  # every request that reached Stripe, in order
        self.customers: dict[str, dict] = {}
        self.checkout_sessions: list[dict] = []
        self.portal_sessions: list[dict] = []
        self.meter_events: dict[str, dict] = {}  # identifier -> the event Stripe counted
        self._idempotent: dict[str, tuple[dict, dict, int]] = {}
        self.lose_responses = 0
        self.down = False

    # --- the HTTPClient interface ---------------------------------------------------------------------
    def request(self, method, url, headers, post_data=None, *, _usage=None):
        if self.down:
            raise stripe.APIConnectionError("Could not connect to Stripe (fake: down).", should_retry=False)
        parts = urlsplit(url)
        params = decode_form(post_data or parts.query or "")
        headers = dict(headers or {})
        self.requests.append({"method": method.upper(), "path": parts.path, "params": params, "headers": headers})
        key = headers.get("Idempotency-Key")
        if key in self._idempotent:
            first_params, body, status = self._idempotent[key]
            if first_params != params:
                body, status = _error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                    type_="idempotency_error",
                )
        else:
            body, status = self._route(method.upper(), parts.path, params, headers)
            if key and status < 500:
                self._idempotent[key] = (params, body, status)
        if self.lose_responses > 0:
            self.lose_responses -= 1
            raise stripe.APIConnectionError(
                "Connection reset after the request was sent (fake: response lost).", should_retry=False
            )
        return json.dumps(body), status, {"request-id": _new_id("req"), "idempotency-key": key or ""}

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):  # pragma: no cover
        raise NotImplementedError("the fake does not stream")

    def close(self):
        pass

    # --- what the test asserts on ---------------------------------------------------------------------
    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def metered_total(self, customer: str, event_name: str) -> int:
        """Usage Stripe has counted for a customer on a meter (each identifier once)."""
        return sum(
            int(e["payload"]["value"])
            for e in self.meter_events.values()
            if e["payload"]["stripe_customer_id"] == customer and e["event_name"] == event_name
        )

    # --- the API --------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, params: dict, headers: dict) -> tuple[dict, int]:
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Invalid API Key provided: sk_test_****")
        routes = {
            ("POST", "/v1/customers"): self._create_customer,
            ("POST", "/v1/checkout/sessions"): self._create_checkout_session,
            ("POST", "/v1/billing_portal/sessions"): self._create_portal_session,
            ("POST", "/v1/billing/meter_events"): self._create_meter_event,
        }
        handler = routes.get((method, path))
        if handler is None:
            return _error(404, f"Unrecognized request URL ({method}: {path}).")
        return handler(params)

    def _create_customer(self, params: dict) -> tuple[dict, int]:
        customer = {
            "id": _new_id("cus"),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": int(time.time()),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "email": params.get("email"),
            "invoice_prefix": "FAKE0001",
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "name": params.get("name"),
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self.customers[customer["id"]] = customer
        return customer, 200

    def _missing_customer(self, params: dict) -> tuple[dict, int] | None:
        customer = params.get("customer")
        if customer not in self.customers:
            return _error(400, f"No such customer: '{customer}'", code="resource_missing", param="customer")
        return None

    def _create_checkout_session(self, params: dict) -> tuple[dict, int]:
        if params.get("mode") not in {"payment", "setup", "subscription"}:
            return _error(400, "Missing required param: mode.", code="parameter_missing", param="mode")
        for url_param in ("success_url", "cancel_url"):
            if not str(params.get(url_param, "")).startswith(("http://", "https://")):
                return _error(400, f"Not a valid URL: {url_param}", code="url_invalid", param=url_param)
        if error := self._missing_customer(params):
            return error
        items = params.get("line_items") or []
        if not items:
            return _error(400, "Missing required param: line_items.", code="parameter_missing", param="line_items")
        for i, item in enumerate(items):
            price = self.prices.get(item.get("price"))
            if price is None:
                return _error(400, f"No such price: '{item.get('price')}'", code="resource_missing",
                              param=f"line_items[{i}][price]")
            if price["usage_type"] == "metered" and "quantity" in item:
                return _error(400, "Quantity should not be specified where usage_type is `metered`. Remove "
                              f"quantity from `line_items[{i}]`.", param=f"line_items[{i}][quantity]")
            if price["usage_type"] == "licensed" and "quantity" not in item:
                return _error(400, f"Quantity is required. Add `quantity` to `line_items[{i}]`",
                              param=f"line_items[{i}][quantity]")
        session_id = _new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": params.get("allow_promotion_codes") == "true",
            "amount_subtotal": None,
            "amount_total": None,
            "billing_address_collection": None,
            "cancel_url": params["cancel_url"],
            "client_reference_id": params.get("client_reference_id"),
            "created": int(time.time()),
            "currency": None,
            "customer": params["customer"],
            "customer_email": None,
            "expires_at": int(time.time()) + 86_400,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": params.get("metadata", {}),
            "mode": params["mode"],
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": params["success_url"],
            "ui_mode": "hosted",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}#fidkdWxOYHwnPyd1blpxYHZxWjA0",
        }
        self.checkout_sessions.append({**session, "line_items": items,
                                       "subscription_data": params.get("subscription_data", {})})
        return session, 200

    def _create_portal_session(self, params: dict) -> tuple[dict, int]:
        if error := self._missing_customer(params):
            return error
        session_id = _new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": "bpc_1FakeRecsvcPortalConfig",
            "created": int(time.time()),
            "customer": params["customer"],
            "flow": None,
            "livemode": False,
            "locale": None,
            "on_behalf_of": None,
            "return_url": params.get("return_url"),
            "url": f"https://billing.stripe.com/p/session/test_{session_id}",
        }
        self.portal_sessions.append(session)
        return session, 200

    def _create_meter_event(self, params: dict) -> tuple[dict, int]:
        name, payload = params.get("event_name"), params.get("payload") or {}
        if name not in METER_EVENT_NAMES:
            return _error(400, f"No active meter found for event_name '{name}'.", param="event_name")
        if not payload.get("stripe_customer_id") or not re.fullmatch(r"-?\d+(\.\d+)?", payload.get("value", "")):
            return _error(400, "The payload must contain stripe_customer_id and a numeric value.", param="payload")
        identifier = params.get("identifier") or _new_id("mev")
        if len(identifier) > 100:
            return _error(400, "identifier must be at most 100 characters.", param="identifier")
        now = int(time.time())
        timestamp = int(params.get("timestamp") or now)
        if not now - 35 * 86_400 <= timestamp <= now + 300:
            return _error(400, "Timestamp must be within the past 35 calendar days and at most 5 minutes in the "
                          "future.", param="timestamp")
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": name,
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": timestamp,
        }
        # Stripe enforces identifier uniqueness: a second event with the same identifier is not counted.
        self.meter_events.setdefault(identifier, event)
        return event, 200


# --- webhooks --------------------------------------------------------------------------------------


def sign(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" with the secret>."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event(event_type: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> dict:
    """A Stripe Event object (snapshot payload) wrapping `obj`."""
    return {
        "id": event_id or _new_id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj, "previous_attributes": {}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def subscription(customer: str, *, status: str = "active", prices: tuple[str, ...] = ("price_growth_flat",),
                 sub_id: str = "sub_1FakeRecsvcGrowth", period_start: int | None = None,
                 metadata: dict | None = None) -> dict:
    """A Subscription object as in the API reference (current period on the items since 2025-03-31)."""
    start = int(time.time()) - 86_400 if period_start is None else period_start
    end = start + 30 * 86_400
    items = [
        {
            "id": _new_id("si"),
            "object": "subscription_item",
            "created": start,
            "current_period_end": end,
            "current_period_start": start,
            "metadata": {},
            "price": {
                "id": price,
                "object": "price",
                "active": True,
                "billing_scheme": "per_unit",
                "currency": "usd",
                "livemode": False,
                "product": "prod_FakeRecsvc",
                "recurring": {"interval": "month", "interval_count": 1,
                              "usage_type": PRICES.get(price, {}).get("usage_type", "licensed"),
                              "meter": PRICES.get(price, {}).get("meter")},
                "type": "recurring",
                "unit_amount": PRICES.get(price, {}).get("unit_amount"),
            },
            "quantity": 1 if PRICES.get(price, {}).get("usage_type") != "metered" else None,
            "subscription": sub_id,
            "tax_rates": [],
        }
        for price in prices
    ]
    return {
        "id": sub_id,
        "object": "subscription",
        "billing_cycle_anchor": start,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": start,
        "currency": "usd",
        "customer": customer,
        "default_payment_method": "pm_FakeRecsvcCard",
        "ended_at": None,
        "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                  "url": f"/v1/subscription_items?subscription={sub_id}"},
        "latest_invoice": "in_FakeRecsvcLatest",
        "livemode": False,
        "metadata": metadata or {},
        "start_date": start,
        "status": status,
        "trial_end": None,
        "trial_start": None,
    }


def invoice(customer: str, *, status: str = "paid", sub_id: str = "sub_1FakeRecsvcGrowth",
            invoice_id: str | None = None) -> dict:
    """An Invoice object as in the API reference (its subscription under parent.subscription_details)."""
    return {
        "id": invoice_id or _new_id("in"),
        "object": "invoice",
        "amount_due": 9900,
        "amount_paid": 9900 if status == "paid" else 0,
        "amount_remaining": 0 if status == "paid" else 9900,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": int(time.time()),
        "currency": "usd",
        "customer": customer,
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_Fake/test_Fake",
        "livemode": False,
        "next_payment_attempt": None if status == "paid" else int(time.time()) + 3 * 86_400,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": sub_id},
            "type": "subscription_details",
        },
        "status": status,
    }


@contextlib.contextmanager
def installed(settings_fixture, fake: FakeStripe | None = None) -> Iterator[FakeStripe]:
    """Point the stripe library at a FakeStripe and configure billing (keys, prices) for one test."""
    fake = fake or FakeStripe()
    settings_fixture.STRIPE_SECRET_KEY = SECRET_KEY
    settings_fixture.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings_fixture.RECSVC_BILLING_PLANS = plans_with_prices()
    previous = stripe.default_http_client
    stripe.default_http_client = fake
    try:
        yield fake
    finally:
        stripe.default_http_client = previous


def plans_with_prices(*, free_events: int = 5, free_recommendations: int = 5, growth_events: int = 100,
                      growth_recommendations: int = 100) -> dict:
    """settings.RECSVC_BILLING_PLANS with the fake's prices and small quotas, so tests reach them cheaply."""
    plans = copy.deepcopy(settings.RECSVC_BILLING_PLANS)
    plans["free"]["quotas"] = {"recommendations": free_recommendations, "events": free_events}
    plans["growth"]["quotas"] = {"recommendations": growth_recommendations, "events": growth_events}
    plans["scale"]["quotas"] = {"recommendations": 10 * growth_recommendations, "events": 10 * growth_events}
    for key in ("growth", "scale"):
        plans[key]["stripe_price"] = f"price_{key}_flat"
        plans[key]["stripe_overage_prices"] = {"recommendations": f"price_{key}_recs", "events": f"price_{key}_events"}
    return plans
