"""Recommendations, similar products and popular products (scope `recommend`), answered by serving/.

Views validate the query strictly (a bad value is a 400 problem) and look up the product of a URL;
serving/answers.py computes and caches the answer through the funnel in serving/funnel.py. Every answer
carries a fresh `recommendation_id` for attribution, the model version (null without a model), the
experiment variant ("<experiment id>:<variant>" when the customer or session is in a running experiment,
experiments/running.py; else "control") and the reason for its items. `explain=true`
adds per-item scores and the rules, boosts and promotions that touched them (never cached).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from drf_spectacular.drainage import set_override
from drf_spectacular.utils import extend_schema, inline_serializer
from pydantic import Field, ValidationInfo, field_validator
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from core.query import QueryParams, parse_query, query_parameters
from experiments.running import assignment_for
from recs.api.quota import RecommendationsQuota
from recs.attribution.record import record_answer
from recs.models import Product
from serving.answers import (
    PopularRequest,
    RecommendRequest,
    ServingOptions,
    SimilarRequest,
    bandit_served,
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


Id = Annotated[str, Field(min_length=1, max_length=128)]


class _Common(QueryParams):
    k: Annotated[int, Field(ge=1, le=100, description="how many items (1-100)")] = 10
    category: Annotated[str | None, Field(
        min_length=1, max_length=200, description="only products with this element in their category_path"
    )] = None
    price_min: Annotated[float | None, Field(ge=0, description="only products at least this price")] = None
    price_max: Annotated[float | None, Field(ge=0, description="only products at most this price")] = None
    exclude: Annotated[tuple[str, ...], Field(description="comma-separated product ids")] = ()
    explain: Annotated[bool, Field(description="add scores and the rules that touched each item (not cached)")] = False

    @field_validator("exclude", mode="before")
    @classmethod
    def _split_ids(cls, value: str) -> tuple[str, ...]:
        ids = sorted({part.strip() for part in value.split(",") if part.strip()})
        if len(ids) > MAX_EXCLUDE or any(len(i) > 128 for i in ids):
            raise ValueError(f"At most {MAX_EXCLUDE} product ids of at most 128 characters.")
        return tuple(ids)

    @field_validator("price_max")
    @classmethod
    def _not_below_price_min(cls, value: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("price_min")
        if value is not None and low is not None and value < low:
            raise ValueError("Must not be less than price_min.")
        return value


class _WithPage(_Common):
    page_type: Annotated[Literal[*PAGE_TYPES] | None, Field(description="where the answer is shown")] = None


class RecommendQuery(_WithPage):
    customer_id: Annotated[Id | None, Field(description="the shop's customer id")] = None
    session_id: Annotated[Id | None, Field(description="the current session")] = None
    product_id: Annotated[Id | None, Field(description="the product on screen (never recommended back)")] = None


class SimilarQuery(_WithPage):
    pass


class PopularQuery(_Common):
    window_days: Annotated[int, Field(ge=1, le=365, description="the trailing window, in days (1-365)")] = 30


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
            help_text="personalized, similar_items, popular, no_active_model, unknown_customer, product_not_in_model; "
            "filtered_out when the answer is empty because filters (the request's, the shop's rules, out of stock, "
            "already consumed) removed every candidate"
        ),
        "explain": serializers.JSONField(
            required=False, help_text="with explain=true: filters and what they removed, retrieval depth, ..."
        ),
    },
)
set_override(AnswerDoc, "many", False)  # one answer object, though recommendations and popular are `list` actions


def _stamped(answer: dict, variant: str = PLACEHOLDER_VARIANT) -> dict:
    return {**answer, "recommendation_id": str(uuid.uuid4()), "variant": variant}


def _respond(tenant_id: int, endpoint: str, answer: dict, *, customer_id: str | None = None,
             session_id: str | None = None, variant: str = PLACEHOLDER_VARIANT) -> Response:
    stamped = _stamped(answer, variant)
    # A bandit variant's answer: its exposures and its propensities (the shown order's, for off-policy evaluation).
    propensities = bandit_served(tenant_id, stamped)
    record_answer(tenant_id, endpoint, stamped, customer_id=customer_id, session_id=session_id,
                  propensities=propensities)
    return Response(stamped)


class _RecommendViewSet(TenantViewSet):
    """Each answered request counts once on the shop's `recommendations` meter (billed by usage; a free
    shop past its monthly quota is refused with a problem, recs/api/quota.py)."""

    model = Product
    required_scope = "recommend"
    permission_classes = [HasTenantScope, RecommendationsQuota]
    pagination_class = None
    filter_backends: list = []
    checks_own_query = True  # parse_query refuses what the query model does not name

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code == 200 and isinstance(request.auth, ApiKey):
            usage.record_soon(request.auth.tenant_id, usage.RECOMMENDATIONS)
        return super().finalize_response(request, response, *args, **kwargs)

    def _query(self, model: type[QueryParams]) -> dict:
        return parse_query(model, self.request.query_params).model_dump()


class RecommendationViewSet(_RecommendViewSet):
    @extend_schema(parameters=query_parameters(RecommendQuery), responses=AnswerDoc)
    def list(self, request):
        """Top-k products for a customer (known, anonymous with a session id, or unknown)."""
        req = RecommendRequest(**self._query(RecommendQuery))
        # The exposure: the answer's variant, recorded with it (recs.attribution).
        assigned = assignment_for(self.tenant_id, req.customer_id, req.session_id)
        if assigned is None:
            answer, variant = recommendations_answer(self.tenant_id, req), PLACEHOLDER_VARIANT
        else:
            options = ServingOptions.from_config(assigned.config)
            answer = recommendations_answer(self.tenant_id, req, variant=assigned.label, options=options)
            variant = assigned.label
        return _respond(self.tenant_id, "recommendations", answer, customer_id=req.customer_id,
                        session_id=req.session_id, variant=variant)


class SimilarProductsViewSet(_RecommendViewSet):
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    @extend_schema(parameters=query_parameters(SimilarQuery), responses=AnswerDoc)
    @action(detail=True, methods=["get"])
    def similar(self, request, id: str):
        """Products similar to this one (item-to-item), itself and unavailable products excluded."""
        product = self.get_object()
        req = SimilarRequest(**self._query(SimilarQuery))
        return _respond(self.tenant_id, "similar", similar_answer(self.tenant_id, product.pk, req))


class PopularViewSet(_RecommendViewSet):
    @extend_schema(parameters=query_parameters(PopularQuery), responses=AnswerDoc)
    def list(self, request):
        """The most interacted-with products in stock over a trailing window, overall or in one category."""
        req = PopularRequest(**self._query(PopularQuery))
        return _respond(self.tenant_id, "popular", popular_answer(self.tenant_id, req))
