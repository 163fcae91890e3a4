"""JSON parsing with msgspec: strict UTF-8, size-capped (413 past the cap), fast for bulk batches."""

from __future__ import annotations

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


class RawJSONParser(BaseParser):
    """Hands the view the raw bytes (size-checked); the view decodes into its own msgspec type."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        request = parser_context["request"]
        return read_capped(stream, request.META, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class StrictJSONParser(RawJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return decode_json(super().parse(stream, media_type, parser_context))
