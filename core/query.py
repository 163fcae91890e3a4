"""Query-string parameters declared once as a pydantic model: validated, documented, worded by the API.

A view declares its parameters as a `QueryParams` subclass and calls `parse_query`; `query_parameters`
turns the same model into drf-spectacular's OpenAPI parameters, so the documentation cannot drift from
what is checked. Unknown names and repeated parameters are refused (a misspelt filter must not silently
widen an answer), and each error is a sentence of the API's own, keyed by the parameter, in the usual
400 problem response. A pydantic model is built once per class; DRF's serializers deep-copy their
fields on every instance, which cost a fifth of a cached answer's CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import pydantic
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError


class QueryParams(pydantic.BaseModel):
    """Base of every query model: strict about names, lenient about spelling (query values are strings)."""

    model_config = pydantic.ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False,
    )


Q = TypeVar("Q", bound=QueryParams)


def parse_query(model: type[Q], params: QueryDict) -> Q:
    """The validated parameters, or a ValidationError (400 problem) naming every bad parameter."""
    errors: dict[str, list[str]] = {}
    data: dict[str, str] = {}
    for name, values in params.lists():
        if len(values) > 1:
            errors[name] = ["Give this parameter once."]
        data[name] = values[-1]
    try:
        parsed = model.model_validate(data)
    except pydantic.ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "non_field_errors"
            errors.setdefault(name, []).append(_message(error, model))
    if errors:
        raise ValidationError(errors)
    return parsed


def unknown_parameter(accepted: Iterable[str]) -> str:
    """The one wording of a parameter the endpoint does not take (here and in core/filters.py's lists)."""
    names = ", ".join(accepted)
    if not names:
        return "Unknown parameter. This endpoint takes none."
    return f"Unknown parameter. This endpoint takes: {names}."


def _message(error: Any, model: type[QueryParams]) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "extra_forbidden":
        return unknown_parameter(model.model_fields)
    if kind in ("int_parsing", "int_from_float"):
        return "A whole number is required."
    if kind in ("float_parsing", "finite_number"):
        return "A finite number is required."
    if kind == "bool_parsing":
        return "Use true or false."
    if kind == "greater_than_equal":
        return f"Must be at least {ctx['ge']:g}."
    if kind == "less_than_equal":
        return f"Must be at most {ctx['le']:g}."
    if kind == "string_too_short":
        return "Must not be blank."
    if kind == "string_too_long":
        return f"At most {ctx['max_length']} characters."
    if kind == "literal_error":
        return f"Must be one of {ctx['expected']}."
    if kind == "value_error":
        return str(ctx["error"])
    return str(error["msg"])


def query_parameters(model: type[QueryParams]) -> list[OpenApiParameter]:
    """The model's fields as OpenAPI query parameters (for `extend_schema(parameters=...)`)."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        parameters.append(OpenApiParameter(
            name, type=prop, location=OpenApiParameter.QUERY, required=name in schema.get("required", ()),
            description=description,
        ))
    return parameters


def _without_null(prop: dict) -> dict:
    """An optional parameter is one that may be left out: `null` is not a value a query string can carry."""
    options = [option for option in prop.get("anyOf", ()) if option.get("type") != "null"]
    if len(options) != 1:
        return dict(prop)
    rest = {key: value for key, value in prop.items() if key != "anyOf"}
    if rest.get("default") is None:
        rest.pop("default", None)
    return {**options[0], **rest}
