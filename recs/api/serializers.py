"""Validation of catalog payloads (customers, products). Unknown fields are errors, not silently dropped."""

from __future__ import annotations

from rest_framework import serializers

from recs.ingest.catalog_schema import (
    CustomerSerializer,
    ProductSerializer,
    StrictSerializerMixin,
    to_domain,
)
from recs.models import Event, EventType, ImportJob

__all__ = ["CustomerSerializer", "ProductSerializer", "to_domain"]

class EventOutSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="event_type")
    customer_id = serializers.CharField(source="customer.external_id")
    product_id = serializers.CharField(source="product.external_id")
    timestamp = serializers.DateTimeField(source="ts")

    class Meta:
        model = Event
        fields = [
            "id", "type", "customer_id", "product_id", "timestamp", "value", "quantity", "price", "session_id",
            "recommendation_id", "event_id", "received_at",
        ]


class EventTypeSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    name = serializers.RegexField(r"^[a-z][a-z0-9_]{0,31}$")
    weight = serializers.FloatField(min_value=-100, max_value=100)

    class Meta:
        model = EventType
        fields = ["name", "weight"]


class ImportJobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "kind", "format", "status", "progress", "size_bytes", "processed_bytes", "rows_ok",
            "rows_duplicate", "rows_failed", "errors", "error_message", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields
