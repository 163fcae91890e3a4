"""Events: single and bulk ingestion, listing, and the tenant's custom event types."""

from __future__ import annotations

import django_filters
import msgspec
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response

from core.filters import UtcDateTimeFilter
from core.parsers import RawJSONParser, decode_json
from core.problems import RowsInvalid
from recs.api.quota import EventsQuota
from recs.api.serializers import EventOutSerializer, EventTypeSerializer
from recs.ingest.event_schema import batch_decoder, clean_batch_decoder, event_decoder, field_of
from recs.ingest.event_types import delete_event_type, set_event_type
from recs.ingest.events import ingest_events
from recs.models import BUILTIN_EVENT_WEIGHTS, Event, EventType
from tenants.auth import HasTenantScope
from tenants.viewsets import TenantViewSet

EVENT_FIELDS = {
    "type": serializers.CharField(help_text="view, click, add_to_cart, purchase, rating, impression or a custom type"),
    "customer_id": serializers.CharField(max_length=128),
    "product_id": serializers.CharField(max_length=128),
    "timestamp": serializers.DateTimeField(required=False, help_text="ISO 8601 with offset, or unix seconds"),
    "event_id": serializers.CharField(required=False, help_text="your id: a retry with it never stores twice"),
    "session_id": serializers.CharField(required=False),
    "recommendation_id": serializers.UUIDField(required=False),
    "value": serializers.FloatField(required=False, help_text="the rating for type=rating"),
    "quantity": serializers.IntegerField(required=False),
    "price": serializers.FloatField(required=False),
}
EventInDoc = inline_serializer("EventIn", EVENT_FIELDS)
IngestResultDoc = inline_serializer(
    "IngestResult",
    {
        "received": serializers.IntegerField(),
        "stored": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


def _json_body(request) -> bytes:
    """The bytes RawJSONParser read. With no body, or a body without a Content-Type, DRF parses nothing
    and hands an empty dict instead: the client gets the 400 it can act on."""
    body = request.data
    if not isinstance(body, bytes) or not body:
        raise ParseError("Send the events as a JSON body with Content-Type: application/json.")
    return body


def _decode_json(body: bytes, decoder: msgspec.json.Decoder, what: str):
    try:
        return decode_json(body, decoder)
    except msgspec.ValidationError as exc:
        field, message = field_of(exc)
        raise ValidationError({field if field != "non_field_errors" else what: [message]}) from None


class EventFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(field_name="customer__external_id")
    product = django_filters.CharFilter(field_name="product__external_id")
    # The names an event is sent with: what a client tries first.
    customer_id = django_filters.CharFilter(field_name="customer__external_id", help_text="the same as customer")
    product_id = django_filters.CharFilter(field_name="product__external_id", help_text="the same as product")
    type = django_filters.CharFilter(field_name="event_type")
    since = UtcDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="ts", lookup_expr="lt")
    session_id = django_filters.CharFilter()

    class Meta:
        model = Event
        fields = ["session_id"]


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    model = Event
    serializer_class = EventOutSerializer
    filterset_class = EventFilter
    required_scope = "ingest"
    permission_classes = [HasTenantScope, EventsQuota]

    parser_classes = [RawJSONParser]  # the views decode with msgspec themselves

    def safely_get_queryset(self, queryset):
        return queryset.select_related("customer", "product")

    @extend_schema(request=EventInDoc, responses={201: IngestResultDoc, 200: IngestResultDoc})
    def create(self, request):
        """Store one event. 201 when stored, 200 when its event_id was already stored (a retry).

        Durability: the event is committed without waiting for the database's WAL flush, so a database
        crash can lose events acknowledged in the last ~0.6 s; send an event_id and retry after an outage
        (a retry of a stored event is answered 200). Bulk requests wait for the flush."""
        event = _decode_json(_json_body(request), event_decoder, "event")
        result = ingest_events(self.tenant_id, [event], count_usage=True)
        if result.row_errors:
            raise ValidationError(result.row_errors[0].errors)
        code = status.HTTP_201_CREATED if result.stored else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)

    @extend_schema(
        request=inline_serializer("EventBatchIn", {"events": serializers.ListField(child=EventInDoc)}),
        responses={200: IngestResultDoc, 400: OpenApiResponse(description="no row valid: nothing stored")},
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Store up to 10,000 events. Valid rows are stored, invalid rows reported by index."""
        body = _json_body(request)
        try:
            batch = clean_batch_decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            batch = _decode_json(body, batch_decoder, "events")  # row by row, errors by index
        if not batch.events:
            raise ValidationError({"events": ["Send at least one event."]})
        if len(batch.events) > settings.RECSVC_MAX_BULK_ROWS:
            raise ValidationError({"events": [f"At most {settings.RECSVC_MAX_BULK_ROWS} events per request."]})
        result = ingest_events(self.tenant_id, batch.events, count_usage=True)
        if result.stored == 0 and result.duplicates == 0:
            raise RowsInvalid([e.as_dict() for e in result.row_errors])
        return Response(result.as_dict())


class EventTypeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Custom event types and weight overrides. Built-in types are listed with their default weights."""

    model = EventType
    serializer_class = EventTypeSerializer
    required_scope = "admin"
    lookup_field = "name"
    pagination_class = None

    @extend_schema(
        responses=inline_serializer(
            "EventTypeListed",
            {
                "name": serializers.CharField(),
                "weight": serializers.FloatField(),
                "builtin": serializers.BooleanField(),
                "overridden": serializers.BooleanField(),
            },
            many=True,
        )
    )
    def list(self, request):
        custom = dict(self.get_queryset().values_list("name", "weight"))
        merged = {**BUILTIN_EVENT_WEIGHTS, **custom}
        return Response([
            {"name": name, "weight": weight, "builtin": name in BUILTIN_EVENT_WEIGHTS, "overridden": name in custom}
            for name, weight in sorted(merged.items())
        ])

    @extend_schema(request=inline_serializer("EventTypeWeightIn", {"weight": serializers.FloatField()}))
    def update(self, request, name: str):
        """Create a custom type or set a type's weight (the name comes from the URL)."""
        data = request.data if isinstance(request.data, dict) else {}
        serializer = self.get_serializer(data={**data, "name": name})
        serializer.is_valid(raise_exception=True)
        event_type = set_event_type(self.tenant_id, name, serializer.validated_data["weight"])
        return Response(self.get_serializer(event_type).data)

    def destroy(self, request, name: str):
        delete_event_type(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
