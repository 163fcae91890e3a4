"""Defensive readers for platform payloads: a signed payload is authentic, not necessarily well formed.

Every reader returns a value the catalog and event tables accept (bounded strings without NUL, prices
that fit numeric(12, 2), aware timestamps not in the future) or None.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils.html import strip_tags

_MAX_PRICE = Decimal("9999999999.99")


def external_id(value: Any) -> str | None:
    """A platform id (positive integer, possibly beyond 2**53, or its decimal string) as our string id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and 0 < len(value) <= 40 and int(value) > 0:
        return str(int(value))
    return None


def text(value: Any, max_length: int) -> str:
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "").strip()[:max_length]


def plain_text(value: Any, max_length: int) -> str:
    """HTML descriptions (Shopify body_html, WooCommerce description) as plain text."""
    return text(strip_tags(value) if isinstance(value, str) else "", max_length)


def price(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0 or amount > _MAX_PRICE:
        return None
    return amount


def integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def timestamp(value: Any, *, naive_is_utc: bool = True) -> dt.datetime | None:
    """ISO 8601 (Shopify: with offset; WooCommerce *_gmt: without, meaning UTC), in UTC. A time later than now
    (beyond the tolerated skew) is clamped to now: a future `updated_at` would make every later update
    of the row look stale."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            return None
        parsed = parsed.replace(tzinfo=dt.UTC)
    parsed = parsed.astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    if parsed > now + dt.timedelta(seconds=settings.RECSVC_MAX_FUTURE_SKEW_SECONDS):
        return now
    return parsed


def string_list(values: Any, *, max_items: int, max_length: int) -> list[str]:
    out: list[str] = []
    for value in values if isinstance(values, list) else []:
        item = text(value, max_length)
        if item and item not in out:
            out.append(item)
        if len(out) == max_items:
            break
    return out


def compact(mapping: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values: attributes hold only what the platform actually said."""
    return {k: v for k, v in mapping.items() if v not in (None, "", [], {})}
