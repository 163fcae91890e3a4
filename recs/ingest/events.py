"""Event ingestion: validate a batch, resolve the shop's ids, store the valid rows at once.

Validation is exact row by row, but a batch in which no row can fail (the usual case) is recognised
column-wise first, which costs a fraction of the per-row checks (see `_all_clean`).

Semantics (documented in docs/api.md): a batch stores every valid row and reports each invalid one
with its row number; nothing of an invalid row is stored. Events naming an unknown customer create a
placeholder customer (shops see visitors before they send customer records); events naming an unknown
product are rejected, because a product with no catalog data cannot be recommended. The shop's
`event_id` makes retries idempotent: a stored id is counted as a duplicate, a repeat inside one batch
is a row error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

import msgspec
from django.conf import settings
from django.db import transaction

from recs.ingest import store
from recs.ingest.errors import IngestResult, RowError
from recs.ingest.event_schema import EventIn, event_decoder, field_of
from recs.ingest.event_types import event_weights
from recs.models import BUILTIN_EVENT_WEIGHTS
from serving.bandit import FEEDBACK_TYPES, Feedback, record_feedback
from serving.cache import bump_customer_generation
from tenants.billing import usage

_EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
_RATING_RANGE = (0.0, 10.0)


def _decode(row: Any) -> EventIn:
    if type(row) is bytes:  # NDJSON lines: the common case of a large import first
        return event_decoder.decode(row)
    if isinstance(row, EventIn):
        return row
    if isinstance(row, (bytes, bytearray, memoryview, msgspec.Raw, str)):
        return event_decoder.decode(row)
    if isinstance(row, dict):
        # CSV rows arrive as strings: lax conversion turns "3" into 3 and ISO strings into datetimes.
        return msgspec.convert({k: v for k, v in row.items() if v not in ("", None)}, EventIn, strict=False)
    raise msgspec.ValidationError("Each event must be a JSON object.")


def _check(event: EventIn, weights: Collection[str], now: dt.datetime, latest: dt.datetime):
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

_list_decoder = msgspec.json.Decoder(list[EventIn])


def _decode_batch(rows: Sequence[Any]) -> list[EventIn] | None:
    """The whole batch decoded in one call when every row is a raw JSON value (the bulk API) or already
    decoded; None when any row fails, or the rows are of another kind: then they are decoded one by one.

    Only `msgspec.Raw` rows are joined: each is exactly one JSON value, so the joined array has exactly
    one element per row. (Arbitrary lines, as in an NDJSON file, could merge or split when joined.)
    """
    if all(type(row) is EventIn for row in rows):
        return list(rows)
    if not all(type(row) is msgspec.Raw for row in rows):
        return None
    try:
        return _list_decoder.decode(b"[" + b",".join(rows) + b"]")
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None


def _all_clean(events: list[EventIn], weights: Collection[str], latest: dt.datetime) -> bool:
    """True when no row of the batch can fail `_check` or the duplicate test: checked column-wise, which
    costs a small fraction of checking each row. Any doubt answers False (the exact row-by-row path)."""
    types = {e.type for e in events}
    if not types <= set(weights):
        return False
    if "rating" in types and not all(
        e.value is not None and _RATING_RANGE[0] <= e.value <= _RATING_RANGE[1] for e in events if e.type == "rating"
    ):
        return False
    strings = "".join([e.customer_id + e.product_id + (e.event_id or "") + (e.session_id or "") for e in events])
    if "\x00" in strings:
        return False
    stamps = [e.timestamp for e in events if e.timestamp is not None]
    if stamps:
        if not all(type(ts) is dt.datetime for ts in stamps):
            return False
        if min(stamps) < _EARLIEST or max(stamps) > latest:
            return False
    ids = [e.event_id for e in events if e.event_id is not None]
    return len(set(ids)) == len(ids)


def _known_types(tenant_id: int, decoded: list[tuple[int, EventIn]]) -> Collection[str]:
    """The event types the batch may use. Validation needs only the names, and built-in types are always
    accepted (a tenant may override their weights, not remove them), so the tenant's own types are read
    (a cache round trip) only when the batch names another type."""
    if all(event.type in BUILTIN_EVENT_WEIGHTS for _, event in decoded):
        return BUILTIN_EVENT_WEIGHTS.keys()
    return event_weights(tenant_id).keys()


def validate_events(rows: Sequence[Any], tenant_id: int) -> tuple[list[ValidRow], list[RowError]]:
    now = dt.datetime.now(dt.UTC)
    latest = now + dt.timedelta(seconds=settings.RECSVC_MAX_FUTURE_SKEW_SECONDS)
    errors: list[RowError] = []
    batch = _decode_batch(rows)
    decoded: list[tuple[int, EventIn]] = []
    if batch is not None:
        decoded = list(enumerate(batch))
    else:
        for index, row in enumerate(rows):
            try:
                decoded.append((index, _decode(row)))
            except msgspec.ValidationError as exc:
                field, message = field_of(exc)
                errors.append(RowError(index, {field: [message]}))
            except msgspec.DecodeError as exc:
                errors.append(RowError(index, {"non_field_errors": [str(exc)]}))
            except UnicodeDecodeError:
                errors.append(RowError(index, {"non_field_errors": ["Invalid UTF-8."]}))
    weights = _known_types(tenant_id, decoded)
    if _all_clean([event for _, event in decoded], weights, latest):
        return [(index, event, event.timestamp or now) for index, event in decoded], errors
    valid: list[ValidRow] = []
    seen_ids: set[str] = set()
    for index, event in decoded:
        ts, problems = _check(event, weights, now, latest)
        if event.event_id is not None and not problems:
            if event.event_id in seen_ids:
                problems["event_id"] = ["Duplicate event_id inside this batch."]
            seen_ids.add(event.event_id)
        if problems:
            errors.append(RowError(index, problems))
        else:
            valid.append((index, event, ts))
    errors.sort(key=lambda e: e.row)
    return valid, errors


def ingest_events(tenant_id: int, rows: Sequence[Any], *, count_usage: bool = False) -> IngestResult:
    """Validate and store a batch of events for one tenant (the caller has entered its tenant context).

    `count_usage`: count the stored events on the shop's usage meter (the API; imports count per chunk)."""
    valid, errors = validate_events(rows, tenant_id)
    result = IngestResult(received=len(rows), row_errors=errors)
    if not valid:
        return result
    outermost = not transaction.get_connection().in_atomic_block
    known: list[ValidRow] | None = None
    if len(valid) == 1 and store.is_postgres():
        known, stored = _store_one(tenant_id, valid[0], result, outermost)
    if known is None:
        known, stored = _store_batch(tenant_id, valid, result, outermost)
    result.stored = stored
    result.duplicates = len(known) - stored
    if stored:
        # Every ingestion path (API, imports, shop webhooks) ends here: these customers' cached answers go
        # stale once the events are visible (at once outside a transaction, else at its commit).
        touched = {event.customer_id for _, event, _ in known}
        transaction.on_commit(lambda: bump_customer_generation(tenant_id, touched))
        feedback = _bandit_feedback(known)
        if feedback:  # rewards of bandit answers, in their posteriors seconds after the commit
            transaction.on_commit(lambda: record_feedback(tenant_id, feedback))
        if count_usage:
            usage.record_soon(tenant_id, usage.EVENTS, stored)
    result.row_errors.sort(key=lambda e: e.row)
    return result


def _bandit_feedback(rows: list[ValidRow]) -> list[Feedback]:
    """The events that may reward a bandit answer: a recommendation_id and a rewarding type. A duplicate of a
    stored event is passed too: the bandit counts each (answer, item, reward) once."""
    return [
        Feedback(str(event.recommendation_id), event.product_id, event.type, _revenue(event))
        for _, event, _ in rows if event.recommendation_id is not None and event.type in FEEDBACK_TYPES
    ]


def _revenue(event: EventIn) -> float:
    """A purchase's revenue as attribution sums it (recs/attribution/stats.py): value, else price x quantity."""
    if event.value is not None:
        return float(event.value)
    return float(event.price or 0.0) * (event.quantity or 1)


def _record(event: EventIn, ts: dt.datetime, customer: Any, product: Any) -> tuple:
    return (
        event.type, customer, product, ts, event.value, event.quantity, event.price, event.session_id or "",
        event.recommendation_id, event.event_id,
    )


def _store_one(
    tenant_id: int, row: ValidRow, result: IngestResult, outermost: bool
) -> tuple[list[ValidRow] | None, int]:
    """One event in one statement (store.insert_one_event); (None, 0) when the general path must run."""
    index, event, ts = row
    product_known, customer_resolved, stored = store.insert_one_event(
        tenant_id, _record(event, ts, event.customer_id, event.product_id),
        async_commit=outermost and settings.RECSVC_SINGLE_EVENT_ASYNC_COMMIT,
    )
    if not product_known:
        result.row_errors.append(RowError(index, {"product_id": [f"Unknown product '{event.product_id}'."]}))
        return [], 0
    if not customer_resolved:
        return None, 0  # the customer was created concurrently: the general path finds it
    return [row], stored


def _store_batch(
    tenant_id: int, valid: list[ValidRow], result: IngestResult, outermost: bool
) -> tuple[list[ValidRow], int]:
    with transaction.atomic():
        product_ids, customer_ids = store.resolve_ids(
            tenant_id, {event.product_id for _, event, _ in valid}, {event.customer_id for _, event, _ in valid}
        )
        known: list[ValidRow] = valid
        if len(product_ids) < len({event.product_id for _, event, _ in valid}):
            known = []
            for index, event, ts in valid:
                if event.product_id in product_ids:
                    known.append((index, event, ts))
                else:
                    result.row_errors.append(
                        RowError(index, {"product_id": [f"Unknown product '{event.product_id}'."]})
                    )
        # Placeholders only for rows that are stored: a rejected row leaves nothing behind.
        missing = {event.customer_id for _, event, _ in known} - customer_ids.keys()
        if missing:
            customer_ids.update(store.create_placeholder_customers(tenant_id, sorted(missing)))
        records = [
            _record(event, ts, customer_ids[event.customer_id], product_ids[event.product_id])
            for _, event, ts in known
        ]
        stored = store.insert_events(tenant_id, records, commit_follows=outermost)
    return known, stored
