"""Answers of the recommendation endpoints: shop ids -> funnel -> JSON-ready dict, through the cache.

The API views only validate and look up the product of a URL; everything else is here, so the batch
precompute (`precompute_recommendations`) writes exactly what the API would read, under the same key.

An answer dict is {"items": [{"id", "score", "title"}...], "model_version", "reason"}; the view adds the
per-response `recommendation_id` and `variant`. With `explain` each item also gets an "explain" member
(retrieval_score, ranker_score, score, source, popularity, boosts, promotions; a score the item did not
get is null: popular fallback items have no retrieval or ranker score, similar items no ranker score) and
the answer an "explain" summary (what each filter removed, how deep retrieval went, ...); explained
answers are never cached.

Cached answers (serving/cache.py) are served only while the customer's generation, the tenant's rules
generation and the active model version are those they were computed under; session requests are never
cached (their events may belong to an anonymous customer whose generation the request does not know).

An experiment's variant (experiments/, assigned by the recommendation view) reaches serving as its label and
its `ServingOptions`: the label and the options join the cache key's shape, so an answer cached under one
variant is never served to another; without a variant the key is the one precompute writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from core.metrics import count_answer_lookup
from recs.models import Customer, Product
from serving import cache, ranking
from serving.bandit import REWARDS, Bandit, BanditSettings, Draw, commit
from serving.funnel import POPULAR_WINDOW_DAYS, Context, Recommendation, popular, recommend, similar_items
from tenants.context import tenant_context

# explain's `scoring` when a variant turned the ranker off.
RANKER_OFF = "retrieval:ranker_off"


@dataclass(frozen=True)
class ServingOptions:
    """What a variant may change in serving today (experiments/config.py validates the shop's JSON)."""

    ranker: bool = True  # False: order the filtered candidates by their retrieval score
    bandit: BanditSettings | None = None  # Thompson sampling reorders the head (serving/bandit.py)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ServingOptions:
        """The options of a validated variant configuration (experiments.config.validate_config's output)."""
        bandit = None
        if config.get("bandit"):
            reward = config.get("bandit_reward", "click")
            bandit = BanditSettings(
                reward=reward if reward in REWARDS else "click", head=int(config.get("bandit_head", 5)),
                explore_share=float(config.get("bandit_explore_share", 1.0)),
                half_life_hours=float(config.get("bandit_half_life_hours", 336.0)),
            )
        return cls(ranker=bool(config.get("ranker", True)), bandit=bandit)


DEFAULT_OPTIONS = ServingOptions()
# The served answer's bandit draw travels to the view under this key (popped before the response).
DRAW_KEY = "_bandit_draw"


def retrieval_order(tenant_id: int, model: Any, customer_pk: int | None, history_items: np.ndarray,
                    history_weights: np.ndarray, candidate_items: np.ndarray, retrieval_scores: np.ndarray, *,
                    activity: list[tuple] | None = None, cut: Any = None) -> ranking.Scores:
    """The funnel's ranker when a variant turns the ranker off: the retrieval scores, unchanged."""
    return ranking.Scores(np.asarray(retrieval_scores, dtype=np.float32), RANKER_OFF)


@dataclass(frozen=True)
class _Base:
    k: int = 10
    exclude: tuple[str, ...] = ()  # shop product ids
    page_type: str | None = None
    category: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    explain: bool = False

    def __post_init__(self) -> None:
        # One spelling per request shape, so equal requests share a cache key.
        object.__setattr__(self, "exclude", tuple(sorted({str(e) for e in self.exclude if str(e)})))
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    def shape(self) -> dict[str, Any]:
        """What the cache key hashes: every field that changes the answer (explain does not)."""
        # Shallow: every field is a scalar or a tuple of strings (asdict's deep copy cost 20 us a request).
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explain"}


@dataclass(frozen=True)
class RecommendRequest(_Base):
    customer_id: str | None = None  # the shop's customer id
    session_id: str | None = None
    product_id: str | None = None  # the product on screen: excluded from the answer


@dataclass(frozen=True)
class SimilarRequest(_Base):
    pass


@dataclass(frozen=True)
class PopularRequest(_Base):
    window_days: int = POPULAR_WINDOW_DAYS


# --- shaping -----------------------------------------------------------------------------------------


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def as_answer(rec: Recommendation, *, explain: bool = False) -> dict[str, Any]:
    items = []
    for i in rec.items:
        item: dict[str, Any] = {"id": i.external_id, "score": round(i.score, 6), "title": i.title}
        if explain:
            item["explain"] = {
                "retrieval_score": _round(i.retrieval_score),
                "ranker_score": _round(i.ranker_score),
                "score": _round(i.score),
                "source": i.source,
                "popularity": _round(i.popularity),
                "boosts": list(i.boosts),
                "promotions": list(i.promotions),
            }
        items.append(item)
    answer: dict[str, Any] = {"items": items, "model_version": rec.model_version, "reason": rec.reason}
    if explain:
        answer["explain"] = rec.explain
    return answer


def _product_pks(tenant_id: int, external_ids: Iterable[str]) -> list[int]:
    ids = list(external_ids)
    if not ids:
        return []
    return list(Product.objects.for_tenant(tenant_id).filter(external_id__in=ids).values_list("pk", flat=True))


def _context(tenant_id: int, request: _Base, product_id: str | None = None) -> Context:
    product_pk = None
    if product_id:  # an id the shop has not sent us (yet) has nothing to exclude
        found = _product_pks(tenant_id, [product_id])
        product_pk = found[0] if found else None
    return Context(request.page_type, product_pk, request.category, request.price_min, request.price_max)


def _through_cache(
    tenant_id: int, kind: str, request: _Base | _Shaped, compute: Callable[[], Recommendation], *,
    customer: str | None = None, cacheable: bool = True,
) -> dict[str, Any]:
    if not cacheable or request.explain:
        return as_answer(compute(), explain=request.explain)
    lookup = cache.lookup_answer(tenant_id, kind, request.shape(), customer=customer)
    count_answer_lookup(lookup.answer is not None)
    if lookup.answer is not None:
        return lookup.answer
    rec = compute()
    answer = as_answer(rec)
    cache.store_answer(lookup, answer, max_seconds=rec.valid_for)
    return answer


# --- the endpoints' answers ---------------------------------------------------------------------------


def _compute_recommendations(tenant_id: int, request: RecommendRequest, customer_pk: int | None = None,
                             options: ServingOptions = DEFAULT_OPTIONS, reranker: Bandit | None = None
                             ) -> Recommendation:
    """`customer_pk` None: the funnel resolves the request's customer id with the customer's events."""
    return recommend(
        tenant_id, customer_pk, session_id=request.session_id, k=request.k,
        exclude=_product_pks(tenant_id, request.exclude), context=_context(tenant_id, request, request.product_id),
        customer_external_id=request.customer_id if customer_pk is None else None,
        ranker=ranking.score if options.ranker else retrieval_order, reranker=reranker,
    )


def _cacheable(request: RecommendRequest) -> bool:
    return not request.session_id and not request.explain


def recommendations_answer(tenant_id: int, request: RecommendRequest, *, use_cache: bool = True,
                           variant: str | None = None, options: ServingOptions = DEFAULT_OPTIONS,
                           bandit: Bandit | None = None) -> dict:
    """The /v1/recommendations answer (without recommendation_id and variant). `use_cache=False` neither
    reads nor writes the cache. `variant`: the experiment variant's label, served with `options`.

    With a bandit (`options.bandit`; `bandit` is a seam for its clock and random generator) every answer is a
    fresh draw, never cached, and carries its draw under DRAW_KEY for `bandit_served` once it is stamped."""
    if options.bandit is not None:
        reranker = bandit or Bandit(options.bandit, variant or "shop")
        rec = _compute_recommendations(tenant_id, request, options=options, reranker=reranker)
        answer = as_answer(rec, explain=request.explain)
        if reranker.draw is not None:
            answer[DRAW_KEY] = reranker.draw
            if request.explain:
                answer["explain"]["bandit"] = {**reranker.draw.explain, "propensities": reranker.draw.propensities}
        return answer

    def compute() -> Recommendation:
        return _compute_recommendations(tenant_id, request, options=options)

    shaped = _Shaped(request, {"variant": variant, "options": asdict(options)}) if variant else request
    return _through_cache(tenant_id, "recommend", shaped, compute, customer=request.customer_id,
                          cacheable=use_cache and _cacheable(request))


def bandit_served(tenant_id: int, stamped: dict) -> list[float] | None:
    """For an answer stamped with its recommendation_id: take out its bandit draw, write the draw's exposures
    and record (serving.bandit.commit) and return the propensities to record with the answer (None: no
    bandit, a deterministic order)."""
    draw: Draw | None = stamped.pop(DRAW_KEY, None)
    if draw is None:
        return None
    commit(tenant_id, stamped["recommendation_id"], draw)
    return draw.propensities


def precompute_recommendations(tenant_id: int, customer_external_ids: list[str], k: int = 10) -> int:
    """Compute the default-shape answer (`RecommendRequest(customer_id=..., k=k)`) of each customer and
    write it where the API reads it. Returns how many answers were written (0 when answers are not cached:
    RECSVC_RECS_CACHE_SECONDS=0; with Redis down the writes are dropped silently, as on the API path)."""
    ids = list(dict.fromkeys(c for c in customer_external_ids if c))
    if not ids or cache.answer_ttl() <= 0:
        return 0
    written = 0
    with tenant_context(tenant_id):
        pks = dict(Customer.objects.for_tenant(tenant_id).filter(external_id__in=ids).values_list("external_id", "pk"))
        for customer_id in ids:
            request = RecommendRequest(customer_id=customer_id, k=k)
            # Looked up first: an event stored while computing changes the stamp, so the stored answer is
            # never served after it.
            lookup = cache.lookup_answer(tenant_id, "recommend", request.shape(), customer=customer_id)
            rec = _compute_recommendations(tenant_id, request, pks.get(customer_id))
            written += cache.store_answer(lookup, as_answer(rec), max_seconds=rec.valid_for)
    return written


def similar_answer(tenant_id: int, product_pk: int, request: SimilarRequest, *, use_cache: bool = True) -> dict:
    """The /v1/products/{id}/similar answer for a product the caller has looked up."""
    def compute() -> Recommendation:
        return similar_items(tenant_id, product_pk, k=request.k, exclude=_product_pks(tenant_id, request.exclude),
                             context=_context(tenant_id, request))

    shape_request = _Shaped(request, {"product": product_pk})
    return _through_cache(tenant_id, "similar", shape_request, compute, cacheable=use_cache)


def popular_answer(tenant_id: int, request: PopularRequest, *, use_cache: bool = True) -> dict:
    def compute() -> Recommendation:
        return popular(tenant_id, request.k, window_days=request.window_days,
                       exclude=_product_pks(tenant_id, request.exclude), context=_context(tenant_id, request))

    return _through_cache(tenant_id, "popular", request, compute, cacheable=use_cache)


@dataclass(frozen=True)
class _Shaped:
    """A request plus fields from the URL, for the cache key."""

    request: _Base
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def explain(self) -> bool:
        return self.request.explain

    def shape(self) -> dict[str, Any]:
        return {**self.request.shape(), **self.extra}
