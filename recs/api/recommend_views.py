"""Recommendations, similar products and popular products (scope `recommend`), answered by serving/.

Views validate the query strictly (a bad value is a 400 problem) and look up the product of a URL;
serving/answers.py computes and caches the answer through the funnel in serving/funnel.py. Every answer
carries a fresh `recommendation_id` for attribution, the model version (null without a model), the
experiment variant (a placeholder until experiments exist) and the reason for its items. `explain=true`
adds per-item scores and the rules, boosts and promotions that touched them (never cached).
"""

from __future__ import annotations

import uuid

from drf_spectacular.drainage import set_override
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from recs.api.quota import RecommendationsQuota
from recs.models import Product
from serving.answers import (
    PopularRequest,
    RecommendRequest,
    SimilarRequest,
    popular_answer,
    recommendations_answer,
    similar_answer,
)
from serving.funnel import PAGE_TYPES
from tenants.auth import HasTenantScope
from tenants.billing import usage
from tenants.models import ApiKey
from tenants.viewsets import TenantViewSet

MAX_EXCLUDE = 500
PLACEHOLDER_VARIANT = "control"


class _Common(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="how many items (1-100)")
    category = serializers.CharField(
        required=False, max_length=200, help_text="only products with this element in their category_path"
    )
    price_min = serializers.FloatField(required=False, min_value=0, help_text="only products at least this price")
    price_max = serializers.FloatField(required=False, min_value=0, help_text="only products at most this price")
    exclude = serializers.CharField(
        required=False, allow_blank=True, max_length=64 * MAX_EXCLUDE, help_text="comma-separated product ids"
    )
    explain = serializers.BooleanField(
        required=False, default=False, help_text="add scores and the rules that touched each item (not cached)"
    )

    def validate_exclude(self, value: str) -> list[str]:
        ids = sorted({part.strip() for part in value.split(",") if part.strip()})
        if len(ids) > MAX_EXCLUDE:
            raise ValidationError(f"At most {MAX_EXCLUDE} product ids.")
        return ids

    def validate(self, attrs: dict) -> dict:
        low, high = attrs.get("price_min"), attrs.get("price_max")
        if low is not None and high is not None and low > high:
            raise ValidationError({"price_min": "Must not be greater than price_max."})
        return attrs


class _WithPage(_Common):
    page_type = serializers.ChoiceField(choices=PAGE_TYPES, required=False, help_text="where the answer is shown")


class RecommendQuery(_WithPage):
    customer_id = serializers.CharField(required=False, max_length=128, help_text="the shop's customer id")
    session_id = serializers.CharField(required=False, max_length=128, help_text="the current session")
    product_id = serializers.CharField(
        required=False, max_length=128, help_text="the product on screen (never recommended back)"
    )


class SimilarQuery(_WithPage):
    pass


class PopularQuery(_Common):
    window_days = serializers.IntegerField(min_value=1, max_value=365, default=30)


AnswerDoc = inline_serializer(
    "RecommendationAnswer",
    {
        "items": inline_serializer(
            "RecommendedItem",
            {
                "id": serializers.CharField(),
                "score": serializers.FloatField(),
                "title": serializers.CharField(),
                "explain": serializers.JSONField(
                    required=False,
                    help_text="with explain=true: retrieval_score, ranker_score, score, source, popularity, boosts, "
                    "promotions",
                ),
            },
            many=True,
        ),
        "recommendation_id": serializers.UUIDField(),
        "model_version": serializers.IntegerField(allow_null=True),
        "variant": serializers.CharField(),
        "reason": serializers.CharField(
            help_text="personalized, similar_items, popular, no_active_model, unknown_customer, product_not_in_model"
        ),
        "explain": serializers.JSONField(
            required=False, help_text="with explain=true: filters and what they removed, retrieval depth, ..."
        ),
    },
)
set_override(AnswerDoc, "many", False)  # one answer object, though recommendations and popular are `list` actions


def _stamped(answer: dict) -> dict:
    return {**answer, "recommendation_id": str(uuid.uuid4()), "variant": PLACEHOLDER_VARIANT}


def _respond(answer: dict) -> Response:
    return Response(_stamped(answer))


def _common(q: dict) -> dict:
    return {
        "k": q["k"], "exclude": tuple(q.get("exclude", ())), "category": q.get("category") or None,
        "price_min": q.get("price_min"), "price_max": q.get("price_max"), "explain": q.get("explain", False),
    }


class _RecommendViewSet(TenantViewSet):
    """Each answered request counts once on the shop's `recommendations` meter (billed by usage; a free
    shop past its monthly quota is refused with a problem, recs/api/quota.py)."""

    model = Product
    required_scope = "recommend"
    permission_classes = [HasTenantScope, RecommendationsQuota]
    pagination_class = None
    filter_backends: list = []

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code == 200 and isinstance(request.auth, ApiKey):
            usage.record_soon(request.auth.tenant_id, usage.RECOMMENDATIONS)
        return super().finalize_response(request, response, *args, **kwargs)

    def _query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _recommend_request(q: dict) -> RecommendRequest:
    return RecommendRequest(
        **_common(q), page_type=q.get("page_type"), customer_id=q.get("customer_id") or None,
        session_id=q.get("session_id") or None, product_id=q.get("product_id") or None,
    )


class RecommendationViewSet(_RecommendViewSet):
    @extend_schema(parameters=[RecommendQuery], responses=AnswerDoc)
    def list(self, request):
        """Top-k products for a customer (known, anonymous with a session id, or unknown)."""
        req = _recommend_request(self._query(RecommendQuery))
        return _respond(recommendations_answer(self.tenant_id, req))


class SimilarProductsViewSet(_RecommendViewSet):
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=[SimilarQuery], responses=AnswerDoc)
    @action(detail=True, methods=["get"])
    def similar(self, request, id: str):
        """Products similar to this one (item-to-item), itself and unavailable products excluded."""
        product = self.get_object()
        q = self._query(SimilarQuery)
        req = SimilarRequest(**_common(q), page_type=q.get("page_type"))
        return _respond(similar_answer(self.tenant_id, product.pk, req))


class PopularViewSet(_RecommendViewSet):
    @extend_schema(parameters=[PopularQuery], responses=AnswerDoc)
    def list(self, request):
        """The most interacted-with products in stock over a trailing window, overall or in one category."""
        q = self._query(PopularQuery)
        return _respond(popular_answer(self.tenant_id, PopularRequest(**_common(q), window_days=q["window_days"])))
