"""Recommendations, similar products and popular products (scope `recommend`), answered by serving/.

Views validate the query strictly (a bad value is a 400 problem) and look up the product of a URL;
serving/answers.py computes and caches the answer through the funnel in serving/funnel.py. Every answer
carries a fresh `recommendation_id` for attribution, the model version (null without a model), the
experiment variant (a placeholder until experiments exist) and the reason for its items. `explain=true`
adds per-item scores and the rules, boosts and promotions that touched them (never cached).
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.drainage import set_override
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from recs.api import fast_path
from recs.api.base import TenantViewSet
from recs.api.quota import RecommendationsQuota
from recs.models import Product
from serving.answers import (
    Found,
    PopularRequest,
    RecommendRequest,
    SimilarRequest,
    popular_answer,
    recommendations_answer,
    recommendations_lookup,
    similar_answer,
)
from serving.cache import AnswerLookup
from serving.catalog import product_pk
from serving.funnel import PAGE_TYPES
from tenants import admission as admissions
from tenants.admission import Admission, Prefetch
from tenants.auth import HasTenantScope
from tenants.billing import usage
from tenants.billing.plans import Meter
from tenants.context import tenant_context
from tenants.models import ApiKey

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


_HOT_RECOMMEND = frozenset({"customer_id", "k"})
_HOT_SIMILAR = frozenset({"k"})
_HOT_K = re.compile(r"[1-9][0-9]?|100")


def _hot_query(query_string: str, names: frozenset[str]) -> dict[str, str] | None:
    """The query's parameters (the WSGI QUERY_STRING) when they are among `names`, each once; else None.
    Parsed as Django's request.GET parses it (UTF-8, percent-escapes decoded with "replace"), without
    building the QueryDict: that was a twentieth of a cached answer's CPU."""
    try:
        query = query_string.encode("iso-8859-1").decode(settings.DEFAULT_CHARSET)
        pairs = parse_qsl(query, keep_blank_values=True, encoding=settings.DEFAULT_CHARSET, max_num_fields=len(names))
    except (UnicodeError, ValueError):  # not UTF-8 (Django falls back to Latin-1), or more fields
        return None
    values = dict(pairs)
    if len(values) != len(pairs) or not values.keys() <= names:
        return None
    return values


def _hot_k(values: dict[str, str]) -> int | None:
    k = values.get("k", "10")
    return int(k) if _HOT_K.fullmatch(k) else None


def hot_recommend_request(query_string: str) -> RecommendRequest | None:
    """The request when its query has the hot shape, `customer_id` and perhaps `k`, each once and plainly
    valid; else None, and the full validation (RecommendQuery) decides. What is accepted here is accepted
    there with the same meaning, so both build the same request and the same cache key."""
    values = _hot_query(query_string, _HOT_RECOMMEND)
    if values is None:
        return None
    customer, k = values.get("customer_id", ""), _hot_k(values)
    if not 0 < len(customer) <= 128 or customer != customer.strip() or not customer.isprintable() or k is None:
        return None
    return RecommendRequest(customer_id=customer, k=k)


def hot_similar_request(query_string: str) -> SimilarRequest | None:
    """As hot_recommend_request, for similar products: no parameter but perhaps `k`."""
    values = _hot_query(query_string, _HOT_SIMILAR)
    k = _hot_k(values) if values is not None else None
    return SimilarRequest(k=k) if k is not None else None


class RecommendationViewSet(_RecommendViewSet):
    _parsed: RecommendRequest | None = None
    _lookup: AnswerLookup | None = None
    _resolved: Found | None = None

    def dispatch(self, request, *args, **kwargs):
        answered = self._answer_fast(request) if request.method == "GET" else None
        return answered if answered is not None else super().dispatch(request, *args, **kwargs)

    def _answer_fast(self, request) -> HttpResponse | None:
        """The fast path (recs/api/fast_path.py): a request of the hot shape is admitted in one Redis round
        trip that also looks its answer up, and answered from the cache or, on a miss, computed, without
        DRF's machinery (about a twentieth of an uncached answer's CPU). Anything else (a bad key, a
        refusal, other parameters, an answer the cache cannot look up) goes on to DRF, which reuses the
        admission and the lookup's result."""
        parsed = hot_recommend_request(request.META.get("QUERY_STRING", ""))
        if parsed is None:
            return None
        self._parsed = parsed
        admission = fast_path.admit(request, self, meter=Meter.RECOMMENDATIONS, prefetch=self._prefetch(parsed))
        if admission is None:
            return None
        tenant_id = admission.key.tenant_id
        with tenant_context(tenant_id):  # as DRF's path runs (recs.api.base)
            found = self._found(admission)
            if found is None:
                return None
            answer = found.answer
            if answer is None:
                answer = recommendations_answer(tenant_id, parsed, found=found)
        usage.record_soon(tenant_id, usage.RECOMMENDATIONS)
        return fast_path.json_response(_stamped(answer))

    def admission_prefetch(self, request) -> Prefetch | None:
        """Called by the authentication, before the key is checked: the cached answer is read in the
        admission's round trip (tenants.admission), so a cached answer costs one round trip in all. An
        invalid query prefetches nothing; it is answered 400 once the key is admitted."""
        serializer = RecommendQuery(data=request.query_params)
        if self.action != "list" or not serializer.is_valid():
            return None
        self._parsed = _recommend_request(serializer.validated_data)
        return self._prefetch(self._parsed)

    def _prefetch(self, parsed: RecommendRequest) -> Prefetch:
        def prefetch(tenant_id: int, pipe) -> None:
            self._lookup = recommendations_lookup(tenant_id, parsed)
            if self._lookup is not None:
                self._lookup.send(pipe)

        return prefetch

    def _found(self, admission: Admission | None) -> Found | None:
        """The prefetched lookup's result, resolved once (a miss of the fast path is resolved again by
        list(), and resolving can cost a round trip: an expired active version, a script Redis forgot)."""
        if self._lookup is None or admission is None or not admission.prefetched:
            return None
        if self._lookup.tenant_id != admission.key.tenant_id:  # cannot happen: a key's tenant is immutable
            return None
        if self._resolved is None:
            self._resolved = self._lookup.result(admission.prefetched[0])
        return self._resolved

    @extend_schema(parameters=[RecommendQuery], responses=AnswerDoc)
    def list(self, request):
        """Top-k products for a customer (known, anonymous with a session id, or unknown)."""
        req = self._parsed or _recommend_request(self._query(RecommendQuery))
        found = self._found(admissions.of(request))
        return _respond(recommendations_answer(self.tenant_id, req, found=found))


class SimilarProductsViewSet(_RecommendViewSet):
    lookup_field = "external_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"

    def dispatch(self, request, *args, **kwargs):
        answered = self._answer_fast(request, kwargs.get("id", "")) if request.method == "GET" else None
        return answered if answered is not None else super().dispatch(request, *args, **kwargs)

    def _answer_fast(self, request, external_id: str) -> HttpResponse | None:
        """The fast path (recs/api/fast_path.py) of a product page's similar items, `k` at most: admitted
        as recommendations are, the product's row id read by a prepared statement instead of the ORM's
        get_object, and answered from the cache or computed, without DRF's machinery (which was about
        half of an uncached answer's CPU here). An unknown product, any other parameter or a refusal goes
        on to DRF, which reuses the admission (one count) and answers the 404 or the problem."""
        parsed = hot_similar_request(request.META.get("QUERY_STRING", ""))
        if parsed is None or not external_id or "\x00" in external_id:  # DRF answers a NUL with a 404
            return None
        admission = fast_path.admit(request, self, meter=Meter.RECOMMENDATIONS)
        if admission is None:
            return None
        tenant_id = admission.key.tenant_id
        with tenant_context(tenant_id):  # as DRF's path runs (recs.api.base)
            pk = product_pk(tenant_id, external_id)
            if pk is None:
                return None
            answer = similar_answer(tenant_id, pk, parsed)
        usage.record_soon(tenant_id, usage.RECOMMENDATIONS)
        return fast_path.json_response(_stamped(answer))

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
