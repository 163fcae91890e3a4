"""/v1/integrations: a shop's store connections (admin scope). The webhook secret is write-only: it is
stored encrypted and no response ever contains it, in any form. /v1/data-exports: the answers to data
subject requests."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.problems import problem
from recs.ingest.catalog_schema import StrictSerializerMixin
from recs.integrations.connections import ConnectionExists, create_connection, normalize_shop_domain, update_connection
from recs.models import DataExport, IntegrationConnection, WebhookDelivery
from tenants.viewsets import TenantViewSet

MAX_DELIVERIES_LISTED = 100


def _refuse_nul(attrs: dict) -> None:
    # PostgreSQL text cannot hold NUL; refuse it as a field error rather than fail on save.
    bad = {name: ["NUL characters are not allowed."] for name in ("secret", "name") if "\x00" in attrs.get(name, "")}
    if bad:
        raise ValidationError(bad)


class ConnectionSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    shop_domain = serializers.CharField(
        max_length=255, help_text="Shopify: the shop's myshopify.com domain. WooCommerce: the store's base URL."
    )
    secret = serializers.CharField(
        write_only=True, min_length=8, max_length=500, trim_whitespace=False,
        help_text="Shopify: the app's client secret. WooCommerce: the webhook's secret. Write-only.",
    )
    webhook_url = serializers.SerializerMethodField(help_text="where the platform must send this store's webhooks")

    class Meta:
        model = IntegrationConnection
        fields = [
            "id", "platform", "name", "shop_domain", "secret", "status", "disabled_reason", "webhook_url",
            "created_at", "last_delivery_at",
        ]
        read_only_fields = ["status", "disabled_reason", "created_at", "last_delivery_at"]

    def get_webhook_url(self, obj: IntegrationConnection) -> str:
        path = reverse(f"integrations:{obj.platform}", args=[str(obj.uuid)])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def validate(self, attrs):
        try:
            attrs["shop_domain"] = normalize_shop_domain(attrs["platform"], attrs["shop_domain"])
        except ValueError as exc:
            raise ValidationError({"shop_domain": [str(exc)]}) from None
        _refuse_nul(attrs)
        return attrs


class ConnectionUpdateSerializer(ConnectionSerializer):
    """PATCH: rename, rotate the secret, disable or re-enable. The platform and store are fixed."""

    platform = serializers.CharField(read_only=True)
    shop_domain = serializers.CharField(read_only=True)
    secret = serializers.CharField(write_only=True, min_length=8, max_length=500, trim_whitespace=False,
                                   required=False)

    class Meta(ConnectionSerializer.Meta):
        read_only_fields = ["disabled_reason", "created_at", "last_delivery_at"]

    def validate(self, attrs):
        _refuse_nul(attrs)
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["delivery_id", "topic", "status", "triggered_at", "received_at", "processed_at", "result", "error"]
        read_only_fields = fields


class IntegrationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet
):
    """Connections of Shopify and WooCommerce stores. Point the store's webhooks at `webhook_url`."""

    model = IntegrationConnection
    serializer_class = ConnectionSerializer
    required_scope = "admin"
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"  # a malformed id is a 404 problem like an unknown one, not a routing miss

    def get_serializer_class(self):
        if self.action == "partial_update":
            return ConnectionUpdateSerializer
        if self.action == "deliveries":
            return DeliverySerializer
        return ConnectionSerializer

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            connection = create_connection(
                self.tenant_id, platform=data["platform"], shop_domain=data["shop_domain"], secret=data["secret"],
                name=data.get("name", ""),
            )
        except ConnectionExists as exc:
            return problem(409, str(exc), code="conflict")
        return Response(self.get_serializer(connection).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, id: str):
        connection = self.get_object()
        serializer = self.get_serializer(connection, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        update_connection(connection, status=data.get("status"), secret=data.get("secret"), name=data.get("name"))
        return Response(ConnectionSerializer(connection, context=self.get_serializer_context()).data)

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, id: str):
        """The connection's most recent webhook deliveries (newest first), with what each one did."""
        connection = self.get_object()
        recent = (
            WebhookDelivery.objects.for_tenant(self.tenant_id).filter(connection=connection)
            .order_by("-received_at", "-pk")[:MAX_DELIVERIES_LISTED]
        )
        return Response(DeliverySerializer(recent, many=True).data)


class DataExportSummarySerializer(serializers.ModelSerializer):
    events = serializers.SerializerMethodField()

    class Meta:
        model = DataExport
        fields = ["id", "subject", "request_id", "created_at", "events"]
        read_only_fields = fields

    def get_events(self, obj: DataExport) -> int:
        return len((obj.content or {}).get("events", []))


class DataExportSerializer(DataExportSummarySerializer):
    class Meta(DataExportSummarySerializer.Meta):
        fields = [*DataExportSummarySerializer.Meta.fields, "content"]
        read_only_fields = fields


class DataExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Answers to data subject requests (Shopify customers/data_request): everything held about one
    customer, to hand on to them. A later erasure of the customer deletes their exports too."""

    model = DataExport
    required_scope = "admin"

    def get_serializer_class(self):
        return DataExportSerializer if self.action == "retrieve" else DataExportSummarySerializer
