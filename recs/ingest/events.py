"""Event ingestion: validate a batch row by row, resolve the shop's ids, store the valid rows at once.

Semantics (documented in the README): a batch stores every valid row and reports each invalid one
with its row number; nothing of an invalid row is stored. Events naming an unknown customer create a
placeholder customer (shops see visitors before they send customer records); events naming an unknown
product are rejected, because a product with no catalog data cannot be recommended. The shop's
`event_id` makes retries idempotent: a stored id is counted as a duplicate, a repeat inside one batch
is a row error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
from django.conf import settings
from django.db import transaction

from recs.ingest import store
from recs.ingest.errors import IngestResult, RowError
from recs.ingest.event_schema import EventIn, event_decoder, field_of
from recs.ingest.event_types import event_weights

_EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
_RATING_RANGE = (0.0, 10.0)


def _decode(row: Any) -> EventIn:
    if isinstance(row, EventIn):
        return row
    if isinstance(row, (bytes, bytearray, memoryview, msgspec.Raw, str)):
        return event_decoder.decode(row)
    if isinstance(row, dict):
        # CSV rows arrive as strings: lax conversion turns "3" into 3 and ISO strings into datetimes.
        return msgspec.convert({k: v for k, v in row.items() if v not in ("", None)}, EventIn, strict=False)
    raise msgspec.ValidationError("Each event must be a JSON object.")


def _check(event: EventIn, weights: dict[str, float], now: dt.datetime, latest: dt.datetime):
    errors: dict[str, list[str]] = {}
    for name in ("customer_id", "product_id", "event_id", "session_id"):
        value = getattr(event, name)
        if value is not None and "\x00" in value:
            errors[name] = ["NUL characters are not allowed."]
    if event.type not in weights:
        errors["type"] = [f"Unknown event type '{event.type}'. Configure custom types at /v1/event-types."]
    elif event.type == "rating":
        if event.value is None:
            errors["value"] = ["A rating needs a value."]
        elif not _RATING_RANGE[0] <= event.value <= _RATING_RANGE[1]:
            errors["value"] = [f"A rating must lie in [{_RATING_RANGE[0]:g}, {_RATING_RANGE[1]:g}]."]
    ts = event.timestamp
    if ts is None:
        ts = now
    elif isinstance(ts, float):
        try:
            ts = dt.datetime.fromtimestamp(ts, dt.UTC)
        except (OverflowError, ValueError, OSError):
            errors["timestamp"] = ["Timestamp out of range."]
            ts = now
    if ts > latest:
        errors["timestamp"] = ["Timestamp is in the future."]
    elif ts < _EARLIEST:
        errors["timestamp"] = ["Timestamp is before 1990."]
    return ts, errors


ValidRow = tuple[int, EventIn, dt.datetime]


def validate_events(rows: Sequence[Any], tenant_id: int) -> tuple[list[ValidRow], list[RowError]]:
    weights = event_weights(tenant_id)
    now = dt.datetime.now(dt.UTC)
    latest = now + dt.timedelta(seconds=settings.RECSVC_MAX_FUTURE_SKEW_SECONDS)
    valid: list[tuple[int, EventIn, dt.datetime]] = []
    errors: list[RowError] = []
    seen_ids: set[str] = set()
    for index, row in enumerate(rows):
        try:
            event = _decode(row)
        except msgspec.ValidationError as exc:
            field, message = field_of(exc)
            errors.append(RowError(index, {field: [message]}))
            continue
        except msgspec.DecodeError as exc:
            errors.append(RowError(index, {"non_field_errors": [str(exc)]}))
            continue
        except UnicodeDecodeError:
            errors.append(RowError(index, {"non_field_errors": ["Invalid UTF-8."]}))
            continue
        ts, problems = _check(event, weights, now, latest)
        if event.event_id is not None and not problems:
            if event.event_id in seen_ids:
                problems["event_id"] = ["Duplicate event_id inside this batch."]
            seen_ids.add(event.event_id)
        if problems:
            errors.append(RowError(index, problems))
        else:
            valid.append((index, event, ts))
    return valid, errors


def ingest_events(tenant_id: int, rows: Sequence[Any]) -> IngestResult:
    """Validate and store a batch of events for one tenant (the caller has entered its tenant context)."""
    valid, errors = validate_events(rows, tenant_id)
    result = IngestResult(received=len(rows), row_errors=errors)
    if not valid:
        return result
    with transaction.atomic():
        product_ids = store.product_ids(tenant_id, {event.product_id for _, event, _ in valid})
        known: list[ValidRow] = []
        for index, event, ts in valid:
            if event.product_id in product_ids:
                known.append((index, event, ts))
            else:
                result.row_errors.append(
                    RowError(index, {"product_id": [f"Unknown product '{event.product_id}'."]})
                )
        # Placeholders only for rows that are stored: a rejected row leaves nothing behind.
        customer_ids = store.ensure_customers(tenant_id, {event.customer_id for _, event, _ in known})
        records = [
            (
                event.type, customer_ids[event.customer_id], product_ids[event.product_id], ts, event.value,
                event.quantity, event.price, event.session_id or "", event.recommendation_id, event.event_id,
            )
            for _, event, ts in known
        ]
        stored = store.insert_events(tenant_id, records)
    result.stored = stored
    result.duplicates = len(records) - stored
    result.row_errors.sort(key=lambda e: e.row)
    return result
