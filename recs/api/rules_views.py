"""/v1/rules, /v1/promotions, /v1/boosts and /v1/recommendation-settings (admin scope): how a shop steers
its recommendations. Validation is recs/rules (shared with the dashboard); these views only map HTTP
onto it. Every change reaches serving at once (the domain functions bump the rules generation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.filters import StrictBooleanFilter
from core.metadata import OneObjectMetadata
from core.problems import domain_call
from core.schema import PROBLEM
from recs import rules
from recs.models import Boost, Promotion, RecommendationSettings, Rule
from recs.models.rules import ENDPOINTS
from tenants.viewsets import TenantViewSet

READ_ONLY = ("id", "created_at", "updated_at")

CONDITIONS_HELP = (
    'A list of 1-20 conditions that must all hold: {"field", "op", "value"}. field: brand, category, tags, '
    "price, stock, title or attributes.<key>; op: eq, ne, in, not_in, lt, lte, gt, gte, contains."
)


def _endpoints_field() -> serializers.Field:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=ENDPOINTS), required=False,
        help_text="where it applies (default: all of recommendations, similar, popular)",
    )


class RuleSerializer(serializers.ModelSerializer):
    params = serializers.JSONField(
        help_text='include_categories / exclude_categories: {"categories": [...]}; price_range: {"min", "max"}; '
        'attribute: {"mode": "include"|"exclude", "conditions": [...]}; exclude_products: {"product_ids": [...]}'
    )
    endpoints = _endpoints_field()

    class Meta:
        model = Rule
        fields = ["id", "name", "kind", "params", "endpoints", "enabled", "created_at", "updated_at"]
        read_only_fields = READ_ONLY


class PromotionSerializer(serializers.ModelSerializer):
    product_ids = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, help_text="the shop's product ids"
    )
    conditions = serializers.JSONField(required=False, help_text=f"may be empty. {CONDITIONS_HELP}")
    threshold = serializers.FloatField(
        min_value=0, max_value=1, required=False,
        help_text="the ranking score a promoted product must reach; its score then becomes 1.0",
    )

    class Meta:
        model = Promotion
        fields = [
            "id", "name", "product_ids", "conditions", "threshold", "starts_at", "ends_at", "enabled",
            "created_at", "updated_at",
        ]
        read_only_fields = READ_ONLY


class BoostSerializer(serializers.ModelSerializer):
    conditions = serializers.JSONField(help_text=CONDITIONS_HELP)
    factor = serializers.FloatField(help_text="score multiplier in (0, 10], not 1; below 1 buries")
    endpoints = _endpoints_field()

    class Meta:
        model = Boost
        fields = ["id", "name", "conditions", "factor", "endpoints", "enabled", "created_at", "updated_at"]
        read_only_fields = READ_ONLY


class RecommendationSettingsSerializer(serializers.ModelSerializer):
    consumed_event_types = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=20, required=False,
        help_text="event types that mean the customer has had the product (default: purchase, rating); such "
        "products are not recommended back to them",
    )
    exclude_consumed_days = serializers.IntegerField(
        min_value=0, allow_null=True, required=False,
        help_text="null: never recommend what the customer ever consumed; 0: do not exclude consumed products; "
        "N: exclude what they consumed in the last N days",
    )
    max_per_category = serializers.IntegerField(
        min_value=1, max_value=100, allow_null=True, required=False,
        help_text="at most this many products of one category per answer (null: no cap)",
    )

    class Meta:
        model = RecommendationSettings
        fields = ["exclude_out_of_stock", "consumed_event_types", "exclude_consumed_days", "max_per_category",
                  "updated_at"]
        read_only_fields = ["updated_at"]


def _body(request) -> dict[str, Any]:
    """The JSON object of a write. Read-only fields (a resource's own representation sent back) are
    ignored as DRF does; every other unknown field is an error (the domain validators say which)."""
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return {key: value for key, value in data.items() if key not in READ_ONLY}


class _SteeringViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """List (newest first), create, read, replace (PUT), change (PATCH) and delete one kind of row."""

    required_scope = "admin"
    validate: Callable[[dict], dict]
    create_fn: Callable[[int, dict], Any]
    update_fn: Callable[[Any, dict], Any]
    delete_fn: Callable[[Any], None]

    def _respond(self, obj, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(obj).data, status=code)

    def create(self, request):
        obj = domain_call(type(self).create_fn, self.tenant_id, _body(request))
        return self._respond(obj, status.HTTP_201_CREATED)

    def update(self, request, pk: str):
        """Replace: fields left out take their defaults."""
        obj = self.get_object()
        clean = domain_call(type(self).validate, _body(request))
        return self._respond(domain_call(type(self).update_fn, obj, clean))

    def partial_update(self, request, pk: str):
        obj = self.get_object()
        return self._respond(domain_call(type(self).update_fn, obj, _body(request)))

    def destroy(self, request, pk: str):
        type(self).delete_fn(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _documented(serializer):
    return extend_schema_view(
        create=extend_schema(request=serializer, responses={201: serializer, 400: PROBLEM}),
        update=extend_schema(request=serializer, responses={200: serializer, 400: PROBLEM}),
        partial_update=extend_schema(request=serializer, responses={200: serializer, 400: PROBLEM}),
    )


class RuleFilter(django_filters.FilterSet):
    enabled = StrictBooleanFilter()
    kind = django_filters.ChoiceFilter(choices=Rule.Kind.choices)

    class Meta:
        model = Rule
        fields = ["enabled", "kind"]


class EnabledFilter(django_filters.FilterSet):
    enabled = StrictBooleanFilter()


class PromotionFilter(EnabledFilter):
    class Meta:
        model = Promotion
        fields = ["enabled"]


class BoostFilter(EnabledFilter):
    class Meta:
        model = Boost
        fields = ["enabled"]


@_documented(RuleSerializer)
class RuleViewSet(_SteeringViewSet):
    """Filter rules applied before ranking: categories in or out, a price range, attribute conditions,
    products never to recommend. `endpoints` says which answers a rule applies to."""

    model = Rule
    serializer_class = RuleSerializer
    filterset_class = RuleFilter
    validate = staticmethod(rules.validate_rule)
    create_fn = staticmethod(rules.create_rule)
    update_fn = staticmethod(rules.update_rule)
    delete_fn = staticmethod(rules.delete_rule)


@_documented(PromotionSerializer)
class PromotionViewSet(_SteeringViewSet):
    """Products put first (score 1.0) when their ranking score reaches `threshold`, chosen by id and/or
    conditions, optionally between `starts_at` and `ends_at`."""

    model = Promotion
    serializer_class = PromotionSerializer
    filterset_class = PromotionFilter
    validate = staticmethod(rules.validate_promotion)
    create_fn = staticmethod(rules.create_promotion)
    update_fn = staticmethod(rules.update_promotion)
    delete_fn = staticmethod(rules.delete_promotion)


@_documented(BoostSerializer)
class BoostViewSet(_SteeringViewSet):
    """Score multipliers for products matching conditions (factor > 1 lifts, < 1 buries)."""

    model = Boost
    serializer_class = BoostSerializer
    filterset_class = BoostFilter
    validate = staticmethod(rules.validate_boost)
    create_fn = staticmethod(rules.create_boost)
    update_fn = staticmethod(rules.update_boost)
    delete_fn = staticmethod(rules.delete_boost)


class RecommendationSettingsViewSet(TenantViewSet):
    """The shop's one settings object: out-of-stock and already-consumed exclusion, diversity cap."""

    model = RecommendationSettings
    metadata_class = OneObjectMetadata
    serializer_class = RecommendationSettingsSerializer
    required_scope = "admin"
    pagination_class = None

    def retrieve(self, request):
        return Response(self.get_serializer(rules.settings_for(self.tenant_id)).data)

    @extend_schema(responses={200: RecommendationSettingsSerializer, 400: PROBLEM})
    def update(self, request):
        """Replace: fields left out take their defaults."""
        clean = domain_call(rules.validate_settings, _body(request))
        return Response(self.get_serializer(domain_call(rules.update_settings, self.tenant_id, clean)).data)

    @extend_schema(responses={200: RecommendationSettingsSerializer, 400: PROBLEM})
    def partial_update(self, request):
        obj = domain_call(rules.update_settings, self.tenant_id, _body(request))
        return Response(self.get_serializer(obj).data)
