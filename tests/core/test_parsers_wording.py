"""core.parsers.field_error: every message msgspec gives for the API's event schemas, in the API's words,
keyed by the field (the JSON path without `$.`). Each case decodes a real body, so a msgspec release that
words its errors otherwise fails here rather than leaking to clients."""

from __future__ import annotations

import json

import msgspec
import pytest

from core.parsers import field_error
from recs.ingest.event_schema import EventIn, batch_decoder, clean_batch_decoder, event_decoder

EVENT = {"type": "view", "customer_id": "c1", "product_id": "p1"}


def _error(decoder: msgspec.json.Decoder, body) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        decoder.decode(json.dumps(body).encode())
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"price": "abc"}, "price", "A number is required."),
        ({"value": "x"}, "value", "A number is required."),
        ({"value": True}, "value", "A number is required."),
        ({"price": [1]}, "price", "A number is required."),
        ({"quantity": 1.5}, "quantity", "A whole number is required."),
        ({"quantity": "3"}, "quantity", "A whole number is required."),
        ({"quantity": 0}, "quantity", "Must be at least 1."),
        ({"quantity": 10**7}, "quantity", "Must be at most 1000000."),
        ({"price": -1}, "price", "Must be at least 0."),
        ({"price": 1e12}, "price", "Must be at most 9999999999.99."),
        ({"value": -1e7}, "value", "Must be at least -1000000."),
        ({"customer_id": 5}, "customer_id", "A string is required."),
        ({"customer_id": ""}, "customer_id", "Must not be empty."),
        ({"customer_id": "x" * 129}, "customer_id", "At most 128 characters."),
        ({"type": "x" * 33}, "type", "At most 32 characters."),
        ({"session_id": "x" * 129}, "session_id", "At most 128 characters."),
        ({"timestamp": "2024-01-01T00:00:00"}, "timestamp", "Give a UTC offset (2024-05-01T10:00:00Z)."),
        ({"timestamp": "yesterday"}, "timestamp",
         "An ISO 8601 date-time with a UTC offset is required (2024-05-01T10:00:00Z)."),
        ({"timestamp": True}, "timestamp", "A number or an ISO 8601 date-time with a UTC offset is required."),
        ({"timestamp": -5}, "timestamp", "Must be at least 0."),
        ({"recommendation_id": "nope"}, "recommendation_id", "A UUID is required."),
        ({"colour": "red"}, "colour", "Unknown field."),
    ],
)
def test_an_event_field_error_is_worded_by_the_api(changes, field, message):
    assert field_error(_error(event_decoder, {**EVENT, **changes})) == (field, message)


def test_a_missing_field_and_a_document_of_another_shape():
    assert field_error(_error(event_decoder, {"type": "view"})) == ("customer_id", "This field is required.")
    assert field_error(_error(event_decoder, [EVENT])) == ("non_field_errors", "A JSON object is required.")
    assert field_error(_error(event_decoder, 5)) == ("non_field_errors", "A JSON object is required.")


@pytest.mark.parametrize("decoder", [batch_decoder, clean_batch_decoder])
def test_batch_errors_name_the_path_below_the_document(decoder):
    assert field_error(_error(decoder, {"events": 5})) == ("events", "A list is required.")
    assert field_error(_error(decoder, {"evts": []})) == ("evts", "Unknown field.")
    assert field_error(_error(decoder, {})) == ("events", "This field is required.")


def test_errors_inside_a_batch_row_carry_the_row_in_their_path():
    rows = [EVENT, {**EVENT, "price": "abc"}]
    assert field_error(_error(clean_batch_decoder, {"events": rows})) == ("events[1].price", "A number is required.")
    missing = {"events": [{"type": "view", "customer_id": "c1"}]}
    assert field_error(_error(clean_batch_decoder, missing)) == ("events[0].product_id", "This field is required.")
    unknown = {"events": [{**EVENT, "x": 1}]}
    assert field_error(_error(clean_batch_decoder, unknown)) == ("events[0].x", "Unknown field.")


def test_lax_conversion_of_csv_rows_is_worded_the_same():
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({**EVENT, "price": "abc"}, EventIn, strict=False)
    assert field_error(caught.value) == ("price", "A number is required.")


def test_the_projects_own_messages_pass_through_and_unknown_shapes_say_nothing_of_msgspec():
    own = msgspec.ValidationError("Each event must be a JSON object.")
    assert field_error(own) == ("non_field_errors", "Each event must be a JSON object.")
    odd = msgspec.ValidationError("Expected `str` matching regex '^a$' - at `$.code`")
    assert field_error(odd) == ("code", "Invalid value.")
