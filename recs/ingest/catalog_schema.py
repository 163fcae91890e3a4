"""Validation of catalog rows (customers, products), shared by the REST API and file imports.

Unknown fields are errors, never silently dropped; strings that PostgreSQL cannot store (NUL) and
oversized or deeply nested attribute objects are refused.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from rest_framework import serializers

from recs.models import Customer, Product

MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_BYTES = 16 * 1024


# DRF's messages in the API's words, the words of the events' (core/parsers.py) and query strings'
# (core/query.py) errors: DRF's own leak its wording ('Expected a list of items but got type "str".').
# Given when the fields are declared: bounds are validators made with the message of that moment.
TEXT = {
    "invalid": "A string is required.", "blank": "Must not be empty.",
    "max_length": "At most {max_length} characters.", "min_length": "At least {min_length} characters.",
}
WHOLE_NUMBER = {
    "invalid": "A whole number is required.", "max_value": "Must be at most {max_value}.",
    "min_value": "Must be at least {min_value}.",
}
NUMBER = {
    **WHOLE_NUMBER, "invalid": "A number is required.", "max_digits": "At most {max_digits} digits.",
    "max_decimal_places": "At most {max_decimal_places} decimal places.",
    "max_whole_digits": "At most {max_whole_digits} digits before the decimal point.",
}
LIST = {
    "not_a_list": "A list is required.", "empty": "Must not be empty.",
    "max_length": "At most {max_length} items.", "min_length": "At least {min_length} items.",
}
BOOLEAN = {"invalid": "Use true or false."}
DATETIME = {"invalid": "An ISO 8601 date-time is required (2024-05-01T10:00:00Z)."}


class ListField(serializers.ListField):
    """Its items' errors as sentences under the list's own name ("Item 1: At most 64 characters."), not
    DRF's nested {index: [...]}, which a problem's `errors` and a bulk row's errors would print raw."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError(
                [f"Item {index}: {message}" for index, messages in exc.detail.items() for message in messages]
            ) from None


class StrictSerializerMixin:
    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


def _check_json_value(value, path: str = "", depth: int = 0) -> None:
    # PostgreSQL jsonb cannot hold NUL characters; deep nesting is a denial-of-service vector.
    if depth > 5:
        raise serializers.ValidationError(f"Nested too deeply at '{path}'.")
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"NUL characters are not allowed at '{path or 'value'}'.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_value(key, path, depth + 1)
            _check_json_value(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth + 1)
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise serializers.ValidationError(f"Unsupported value at '{path}'.")


class AttributesField(serializers.JSONField):
    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object.")
        if len(data) > MAX_ATTRIBUTES:
            raise serializers.ValidationError(f"At most {MAX_ATTRIBUTES} attributes.")
        _check_json_value(data)
        if len(str(data)) > MAX_ATTRIBUTE_BYTES:
            raise serializers.ValidationError(f"Attributes larger than {MAX_ATTRIBUTE_BYTES} bytes.")
        return data


class SourceUpdatedAtField(serializers.DateTimeField):
    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        limit = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.RECSVC_MAX_FUTURE_SKEW_SECONDS)
        if parsed > limit:
            raise serializers.ValidationError("updated_at is in the future.")
        return parsed


class ExternalIdField(serializers.CharField):
    """The shop's id: a string, as in the events API (a number here would not match its events)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=128, min_length=1, trim_whitespace=False, error_messages=TEXT, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        return super().to_internal_value(data)


class CustomerSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    id = ExternalIdField(source="external_id")
    attributes = AttributesField(required=False)
    updated_at = SourceUpdatedAtField(
        source="source_updated_at", required=False, allow_null=True, error_messages=DATETIME
    )

    class Meta:
        model = Customer
        fields = ["id", "attributes", "is_placeholder", "updated_at", "created_at"]
        read_only_fields = ["is_placeholder", "created_at"]


class ProductSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    id = ExternalIdField(source="external_id")
    title = serializers.CharField(max_length=500, error_messages=TEXT)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20_000, error_messages=TEXT)
    category_path = ListField(
        child=serializers.CharField(max_length=100, error_messages=TEXT), max_length=10, required=False,
        error_messages=LIST,
    )
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200, error_messages=TEXT)
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True, error_messages=NUMBER
    )
    currency = serializers.RegexField(
        r"^[A-Z]{3}$", required=False, allow_blank=True,
        error_messages={"invalid": "Three capital letters (ISO 4217: EUR, USD)."},
    )
    stock = serializers.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, allow_null=True, error_messages=WHOLE_NUMBER
    )
    tags = ListField(
        child=serializers.CharField(max_length=64, error_messages=TEXT), max_length=50, required=False,
        error_messages=LIST,
    )
    attributes = AttributesField(required=False)
    updated_at = SourceUpdatedAtField(
        source="source_updated_at", required=False, allow_null=True, error_messages=DATETIME
    )

    class Meta:
        model = Product
        fields = [
            "id", "title", "description", "category_path", "brand", "price", "currency", "stock", "available",
            "tags", "attributes", "updated_at", "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"available": {"error_messages": BOOLEAN}}


def to_domain(validated: dict) -> dict:
    """Serializer output (model field names) to the dict the upsert functions take."""
    item = dict(validated)
    if "source_updated_at" in item:
        item["updated_at"] = item.pop("source_updated_at")
    return item


