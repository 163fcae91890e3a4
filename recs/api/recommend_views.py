"""Recommendations, similar products and popular products (scope `recommend`), answered by serving/.

Views validate, look up the shop's ids, and cache; the funnel in serving/funnel.py decides. Every
answer carries a fresh `recommendation_id` for attribution, the model version (null without a model),
the experiment variant (a placeholder until experiments exist) and the reason for its items.
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from recs.api.base import TenantViewSet
from recs.models import Customer, Product
from serving import cache as answers
from serving.funnel import Reason, Recommendation, popular_items, recommend, similar_items
from serving.registry_cache import active_version_id

MAX_EXCLUDE = 500
PLACEHOLDER_VARIANT = "control"


class _Common(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="how many items (1-100)")


class _WithExclude(_Common):
    exclude = serializers.CharField(
        required=False, allow_blank=True, max_length=64 * MAX_EXCLUDE, help_text="comma-separated product ids"
    )

    def validate_exclude(self, value: str) -> list[str]:
        ids = sorted({part.strip() for part in value.split(",") if part.strip()})
        if len(ids) > MAX_EXCLUDE:
            raise ValidationError(f"At most {MAX_EXCLUDE} product ids.")
        return ids


class RecommendQuery(_WithExclude):
    customer_id = serializers.CharField(required=False, max_length=128, help_text="the shop's customer id")
    session_id = serializers.CharField(required=False, max_length=128, help_text="the current session")


class SimilarQuery(_WithExclude):
    pass


class PopularQuery(_Common):
    window_days = serializers.IntegerField(min_value=1, max_value=365, default=30)
    category = serializers.CharField(required=False, max_length=200, help_text="one element of category_path")


AnswerDoc = inline_serializer(
    "RecommendationAnswer",
    {
        "items": inline_serializer(
            "RecommendedItem",
            {"id": serializers.CharField(), "score": serializers.FloatField(), "title": serializers.CharField()},
            many=True,
        ),
        "recommendation_id": serializers.UUIDField(),
        "model_version": serializers.IntegerField(allow_null=True),
        "variant": serializers.CharField(),
        "reason": serializers.CharField(
            help_text="personalized, similar_items, popular, no_active_model, unknown_customer, product_not_in_model"
        ),
    },
)


def _as_answer(rec: Recommendation) -> dict:
    return {
        "items": [{"id": i.external_id, "score": round(i.score, 6), "title": i.title} for i in rec.items],
        "model_version": rec.model_version,
        "reason": rec.reason,
    }


def _respond(answer: dict) -> Response:
    return Response({**answer, "recommendation_id": str(uuid.uuid4()), "variant": PLACEHOLDER_VARIANT})


class _RecommendViewSet(TenantViewSet):
    model = Product
    required_scope = "recommend"
    pagination_class = None
    filter_backends: list = []

    def _query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _product_pks(self, external_ids: list[str]) -> list[int]:
        if not external_ids:
            return []
        return list(self.get_queryset().filter(external_id__in=external_ids).values_list("pk", flat=True))

    def _cached(self, kind: str, shape: dict, compute, *, customer: str | None = None, cacheable: bool = True):
        if not cacheable:
            return compute()
        key = answers.answer_key(self.tenant_id, kind, shape, active_version_id(self.tenant_id), customer=customer)
        answer = answers.get_answer(key)
        if answer is None:
            answer = compute()
            answers.set_answer(key, answer)
        return answer


class RecommendationViewSet(_RecommendViewSet):
    @extend_schema(parameters=[RecommendQuery], responses=AnswerDoc)
    def list(self, request):
        """Top-k products for a customer (known, anonymous with a session id, or unknown)."""
        q = self._query(RecommendQuery)
        customer_id, session_id = q.get("customer_id"), q.get("session_id")

        def compute() -> dict:
            customer_pk = None
            if customer_id:
                customers = Customer.objects.for_tenant(self.tenant_id)
                customer_pk = customers.filter(external_id=customer_id).values_list("pk", flat=True).first()
            rec = recommend(
                self.tenant_id, customer_pk, session_id=session_id, k=q["k"],
                exclude=self._product_pks(q.get("exclude", [])),
            )
            return _as_answer(rec)

        # A session's events may belong to another (anonymous) customer whose generation this request
        # does not know, so session requests are always answered fresh.
        shape = {"customer": customer_id or "", "k": q["k"], "exclude": q.get("exclude", [])}
        return _respond(self._cached("recommend", shape, compute, customer=customer_id, cacheable=not session_id))


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

        def compute() -> dict:
            rec = similar_items(self.tenant_id, product.pk, k=q["k"], exclude=self._product_pks(q.get("exclude", [])))
            return _as_answer(rec)

        shape = {"product": product.pk, "k": q["k"], "exclude": q.get("exclude", [])}
        return _respond(self._cached("similar", shape, compute))


class PopularViewSet(_RecommendViewSet):
    @extend_schema(parameters=[PopularQuery], responses=AnswerDoc)
    def list(self, request):
        """The most interacted-with products in stock over a trailing window, overall or in one category."""
        q = self._query(PopularQuery)

        def compute() -> dict:
            items = popular_items(self.tenant_id, q["k"], window_days=q["window_days"], category=q.get("category"))
            return _as_answer(Recommendation(items, None, Reason.POPULAR))

        shape = {"k": q["k"], "window_days": q["window_days"], "category": q.get("category") or ""}
        return _respond(self._cached("popular", shape, compute))
