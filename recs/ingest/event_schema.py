"""The wire shape of one event, validated in C by msgspec.

A 10,000-event batch must validate in a few milliseconds to keep the API near the speed of a raw
`COPY`; DRF serializers cost tens of microseconds per row, msgspec well under one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec

from core.parsers import field_error

ShortStr = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# No pattern: a regex per row would dominate the decode time, and a type must be one of the tenant's known
# types anyway (custom types are checked against the pattern when they are created).
EventTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)] | Annotated[float, msgspec.Meta(ge=0)]


# gc=False: an event holds only scalars, so it can never be part of a reference cycle; untracked, the
# 10,000 of a bulk batch no longer trigger the collector's full passes over the whole process heap.
class EventIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    type: EventTypeName
    customer_id: ShortStr
    product_id: ShortStr
    timestamp: Timestamp | None = None
    event_id: ShortStr | None = None
    session_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    recommendation_id: uuid.UUID | None = None
    value: Annotated[float, msgspec.Meta(ge=-1e6, le=1e6)] | None = None
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    price: Annotated[float, msgspec.Meta(ge=0, le=9_999_999_999.99)] | None = None  # numeric(12, 2)


class EventBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Rows kept raw, so that each is decoded on its own and a bad row is reported with its index."""

    events: list[msgspec.Raw]


class CleanEventBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """The same body decoded in one pass, which holds only when every row is well-formed (the usual
    case): a third less decoding than raw rows joined and decoded again."""

    events: list[EventIn]


event_decoder = msgspec.json.Decoder(EventIn)
batch_decoder = msgspec.json.Decoder(EventBatchIn)
clean_batch_decoder = msgspec.json.Decoder(CleanEventBatchIn)


# The wording of a row's decoding error, by field (one parser of msgspec's messages, core/parsers.py).
field_of = field_error
