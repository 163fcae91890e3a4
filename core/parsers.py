"""JSON parsing with msgspec: strict UTF-8, size-capped (413 past the cap), fast for bulk batches."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from core.problems import PayloadTooLarge

_UNTYPED = msgspec.json.Decoder()


def read_capped(stream, request_meta, limit: int) -> bytes:
    """Read a request body, refusing (413) before reading when the declared length is over `limit`."""
    try:
        declared = int(request_meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ParseError("Invalid Content-Length.") from None
    if declared > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {limit} bytes.")
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    return body


def decode_json(body: Any, decoder: msgspec.json.Decoder = _UNTYPED) -> Any:
    """`decoder.decode(body)`, with every way the bytes can fail to be JSON answered as a 400 (ParseError).

    msgspec.ValidationError (JSON, but not of the decoder's type) passes through for the caller to report
    by field. Nesting deeper than the interpreter's recursion limit makes msgspec raise RecursionError (a
    body of 100,000 brackets is 200 KB): that is a malformed body too, never a 500."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        raise  # a subclass of DecodeError: the caller reports it by field
    except msgspec.DecodeError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ParseError("The body is not valid UTF-8.") from None
    except RecursionError:
        raise ParseError("Malformed JSON: nested too deeply.") from None


# msgspec's ValidationError says what it expected in its own words, with where as a JSON path:
# "Expected `float | null`, got `str` - at `$.events[0].price`". The API words it by field instead.
_AT = re.compile(r"^(?P<message>.*) - at `\$(?P<path>.*)`$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<kind>contains unknown|missing required) field `(?P<name>.*)`$", re.DOTALL)
_TYPE = re.compile(r"^Expected `(?P<types>[^`]+)`, got `[^`]+`$")
_BOUND = re.compile(r"^Expected `(?P<type>\w+)` (?P<length>of length )?(?P<op>>=|<=|>|<) (?P<limit>-?[\d.e+-]+)$")
_KINDS = {
    "str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false",
    "datetime": "an ISO 8601 date-time with a UTC offset", "uuid": "a UUID", "array": "a list",
    "object": "a JSON object",
}
_SENTENCES = {
    "Expected `datetime` with a timezone component": "Give a UTC offset (2024-05-01T10:00:00Z).",
    "Invalid RFC3339 encoded datetime": "An ISO 8601 date-time with a UTC offset is required (2024-05-01T10:00:00Z).",
    "Invalid UUID": "A UUID is required.",
}


def field_error(error: msgspec.ValidationError) -> tuple[str, str]:
    """(field, message) in the API's words for a msgspec ValidationError: the field is the JSON path
    without its `$.` (`price`, `events[0].price`; "non_field_errors" for the document itself), and the
    message never quotes msgspec's ("Expected ..."). Messages of the project's own pass through."""
    text = str(error)
    at = _AT.match(text)
    message, path = (at["message"], at["path"].removeprefix(".")) if at else (text, "")
    named = _FIELD.match(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
        return path, "Unknown field." if named["kind"] == "contains unknown" else "This field is required."
    return path or "non_field_errors", _worded(message)


def _worded(message: str) -> str:
    if message in _SENTENCES:
        return _SENTENCES[message]
    expected = _TYPE.match(message)
    if expected:
        kinds = [_KINDS.get(name, name) for name in expected["types"].split(" | ") if name != "null"]
        wanted = " or ".join(kinds)
        return f"{wanted[0].upper()}{wanted[1:]} is required."
    bound = _BOUND.match(message)
    if bound:
        limit = float(bound["limit"])
        shown = str(int(limit)) if limit.is_integer() else bound["limit"]
        if bound["length"]:
            unit = "characters" if bound["type"] == "str" else "items"
            if bound["op"] == ">=" and limit == 1:
                return "Must not be empty."
            return f"At least {shown} {unit}." if bound["op"] == ">=" else f"At most {shown} {unit}."
        return {
            ">=": f"Must be at least {shown}.", "<=": f"Must be at most {shown}.",
            ">": f"Must be more than {shown}.", "<": f"Must be less than {shown}.",
        }[bound["op"]]
    return "Invalid value." if message.startswith(("Expected", "Invalid")) else message


class RawJSONParser(BaseParser):
    """Hands the view the raw bytes (size-checked); the view decodes into its own msgspec type."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        request = parser_context["request"]
        return read_capped(stream, request.META, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class StrictJSONParser(RawJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return decode_json(super().parse(stream, media_type, parser_context))
