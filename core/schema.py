"""The problem responses every operation can give, written into the OpenAPI document once.

Every error is an RFC 7807 document (core/problems.py), and which ones an operation can answer
follows from what it is: each can refuse the key (401), its scope (403) or the rate and quota (429,
402); one with an id in its path can miss (404), as can a list given a bad page cursor; one that takes
a body can find it malformed (400), too large (413) or of another type (415); one with query
parameters can find them invalid (400). drf-spectacular documents only what a view declares, so this
post-processing hook adds the rest, keeping any response a view documented itself.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse

# A view's own problem response (a 409, say); the hook below gives it the Problem body.
PROBLEM = OpenApiResponse(description="Problem details (application/problem+json)")

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 7807 problem details (application/problem+json).",
    "properties": {
        "type": {"type": "string", "example": "/problems/validation-error"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "messages by field",
        },
        "rows": {"type": "array", "items": {"type": "object"}, "description": "bulk requests: errors by row"},
        "retry_after": {"type": "integer", "description": "429: seconds until a retry can pass"},
    },
    "required": ["type", "title", "status", "detail"],
}

_DESCRIPTIONS = {
    "400": "Invalid input: malformed JSON, wrong types, unknown fields or values out of range",
    "401": "No API key, or an unknown or revoked one",
    "402": "The shop's payment failed and its grace period is over",
    "403": "The key lacks the scope this operation needs",
    "404": "No such object in this shop (for a list: a page cursor that is not one)",
    "409": "Conflicts with the current state; the detail says what to do instead",
    "413": "The body is over the size limit",
    "415": "The body is not of a type this operation reads",
    "429": "Rate limit or monthly quota reached (Retry-After says when to retry)",
}
_BODY_METHODS = {"post", "put", "patch"}
_METHODS = _BODY_METHODS | {"get", "delete"}


def _problem(code: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[code],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _codes(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    codes = ["401", "402", "403", "429"] if operation.get("security") != [{}] else []
    query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    if "{" in path or "cursor" in query:  # DRF's cursor pagination answers a bad cursor 404
        codes.append("404")
    if method in _BODY_METHODS and "requestBody" in operation:
        codes += ["400", "413", "415"]
    elif query:
        codes.append("400")
    return codes


def add_problem_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method, operation):
                responses.setdefault(code, _problem(code))
            for code, response in responses.items():  # a view's own 4xx, documented without a body
                if code in _DESCRIPTIONS and "content" not in response:
                    response["content"] = _problem(code)["content"]
    return result
