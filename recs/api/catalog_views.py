"""Customers and products: CRUD and upsert by the shop's own id (`/v1/products/{id}`)."""

from __future__ import annotations

import django_filters
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.filters import StrictBooleanFilter, UtcDateTimeFilter
from core.problems import RowsInvalid, problem
from core.schema import PROBLEM
from recs.api.serializers import CustomerSerializer, ProductSerializer, to_domain
from recs.ingest import catalog
from recs.models import Customer, Product
from tenants.viewsets import TenantViewSet


class BulkUpsertIn(serializers.Serializer):
    items = serializers.ListField(child=serializers.DictField(), allow_empty=False)


BulkUpsertResultDoc = inline_serializer(
    "BulkUpsertResult",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "stale": serializers.IntegerField(help_text="older updated_at than stored: ignored"),
        "rejected": serializers.IntegerField(),
        "errors": serializers.ListField(child=serializers.DictField()),
    },
)


class CatalogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """Shared behaviour; subclasses name their model, serializer and domain functions."""

    required_scope = "ingest"
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    kind: str

    def _upsert(self, items: list[dict], *, partial: bool):
        raise NotImplementedError

    def _delete(self, obj) -> None:
        raise NotImplementedError

    def _validated(self, data, *, partial: bool = False) -> dict:
        serializer = self.get_serializer(data=data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return to_domain(serializer.validated_data)

    def _respond(self, external_id: str, code: int) -> Response:
        obj = self.get_queryset().get(external_id=external_id)
        return Response(self.get_serializer(obj).data, status=code)

    def create(self, request):
        item = self._validated(request.data)
        if self.get_queryset().filter(external_id=item["external_id"]).exists():
            return problem(409, f"'{item['external_id']}' already exists; use PUT to replace it.", code="conflict")
        self._upsert([item], partial=False)
        return self._respond(item["external_id"], status.HTTP_201_CREATED)

    def update(self, request, id: str):
        """Create or replace (upsert) by the shop's id."""
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        if "id" in data and data["id"] != id:
            raise ValidationError({"id": ["Does not match the id in the URL."]})
        item = self._validated({**data, "id": id})
        result = self._upsert([item], partial=False)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return self._respond(id, code)

    def partial_update(self, request, id: str):
        self.get_object()  # 404 for an unknown id
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        if "id" in data and data["id"] != id:
            raise ValidationError({"id": ["Does not match the id in the URL."]})
        item = self._validated({**data, "id": id}, partial=True)
        self._upsert([item], partial=True)
        return self._respond(id, status.HTTP_200_OK)

    def destroy(self, request, id: str):
        self._delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=BulkUpsertIn,
        responses={200: BulkUpsertResultDoc, 400: OpenApiResponse(description="no item valid: nothing stored")},
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """Upsert many. Valid items are stored; invalid ones are reported by index and change nothing."""
        data = request.data
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items or set(data) != {"items"}:
            raise ValidationError({"items": ["Send {\"items\": [...]} with at least one item."]})
        if len(items) > settings.RECSVC_MAX_BULK_ROWS:
            raise ValidationError({"items": [f"At most {settings.RECSVC_MAX_BULK_ROWS} items per request."]})
        valid, row_errors = catalog.validate_catalog_items(self.kind, items)
        errors = [e.as_dict() for e in row_errors]
        if not valid:
            raise RowsInvalid(errors)
        result = self._upsert(valid, partial=False)
        return Response({**result.as_dict(), "rejected": len(errors), "errors": errors})


class ProductFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(method="filter_category", help_text="a category anywhere in the path")
    brand = django_filters.CharFilter()
    available = StrictBooleanFilter()
    updated_since = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Product
        fields = ["brand", "available"]

    def filter_category(self, queryset, name, value):
        return queryset.filter(category_path__contains=[value]) if _supports_json_contains() else queryset.filter(
            category_path__icontains=f'"{value}"'
        )


def _supports_json_contains() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@extend_schema_view(create=extend_schema(responses={201: ProductSerializer, 409: PROBLEM}))
class ProductViewSet(CatalogViewSet):
    model = Product
    kind = "products"
    serializer_class = ProductSerializer
    filterset_class = ProductFilter

    def safely_get_queryset(self, queryset):
        return queryset.filter(deleted=False)

    def _upsert(self, items, *, partial):
        return catalog.upsert_products(self.tenant_id, items, partial=partial)

    def _delete(self, obj):
        catalog.delete_product(obj)


class CustomerFilter(django_filters.FilterSet):
    updated_since = UtcDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    is_placeholder = StrictBooleanFilter()

    class Meta:
        model = Customer
        fields = ["is_placeholder"]


@extend_schema_view(create=extend_schema(responses={201: CustomerSerializer, 409: PROBLEM}))
class CustomerViewSet(CatalogViewSet):
    model = Customer
    kind = "customers"
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter

    def _upsert(self, items, *, partial):
        return catalog.upsert_customers(self.tenant_id, items, partial=partial)

    def _delete(self, obj):
        catalog.delete_customer(obj)
