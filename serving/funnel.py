"""One recommendation request: customer embedding -> FAISS candidates -> rule masks -> ranker -> ordering.

Stages (see /work/shared/ARCHITECTURE.md, "The funnel"):
* retrieval: the FAISS index of the active model, `num_candidates` deep to start with;
* filtering: the candidates' current rows (serving/catalog.py) through the built-in filters (deleted,
  out of stock, already consumed: bought, rated or the shop's own types; the request's exclusions and
  context) and the tenant's compiled rules (serving/rules.py), all vectorised masks. While fewer than k
  items survive (counting the diversity cap), retrieval goes 4x deeper, up to MAX_CANDIDATES; what is
  still missing then comes from popular items that pass the same filters (they keep their popularity
  score and rank after the model's items);
* scoring: `serving.ranking.score` once over all surviving candidates (one forward pass) for
  personalised answers; similar items are ordered by their item-to-item retrieval score (the ranker
  scores a customer against an item, and a product page may have no customer);
* ordering: serving/ordering.py (boosts, promotions, diversity cap, the tenant's re-ranker).
Every answer carries an explain summary (what each filter removed, how deep retrieval went); the API
shows it only when asked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Max, Min
from django.utils import timezone

from recs.ingest.event_types import event_weights
from recs.models import Event
from serving import customer_state, forward, online_features, ranking
from serving.catalog import CandidateTable, empty_table, load_candidates
from serving.customer_state import CustomerEvents, read_customer_events
from serving.ordering import Adjusted, Reranker, adjust, capped_count, diversity_keep, rerank_head
from serving.registry_cache import ServedModel, served_model
from serving.rules import CompiledRules, compiled_rules
from training.registry.load import History, make_history

log = logging.getLogger(__name__)

POPULAR_WINDOW_DAYS = 30
# Retrieval goes deeper (x4 per round) while filters leave fewer than k items, up to this many candidates;
# what is still missing then comes from popular items that pass the same filters.
MAX_CANDIDATES = 10_000
MAX_POPULAR = 10_000
PAGE_TYPES = ("home", "product", "category", "cart", "search", "other")


class Reason:
    PERSONALIZED = "personalized"
    SIMILAR = "similar_items"
    POPULAR = "popular"
    NO_ACTIVE_MODEL = "no_active_model"
    UNKNOWN_CUSTOMER = "unknown_customer"
    PRODUCT_NOT_IN_MODEL = "product_not_in_model"
    # The answer is empty because filters removed every candidate: the request's (category, prices,
    # exclude), the shop's rules or the built-in ones (out of stock, already consumed). An answer the
    # filters only shortened keeps its reason; explain=true says what each filter removed.
    FILTERED_OUT = "filtered_out"


class Endpoint:
    RECOMMENDATIONS = "recommendations"
    SIMILAR = "similar"
    POPULAR = "popular"


@dataclass(frozen=True)
class Context:
    """The request's page context and filters (validated by the API)."""

    page_type: str | None = None
    product_pk: int | None = None  # the product on screen: never recommended back
    category: str | None = None  # only products with this element in category_path
    price_min: float | None = None
    price_max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        # Shallow: every field is a scalar (asdict's deep copy cost 5 us, twice an answer).
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class ScoredItem:
    product_pk: int
    external_id: str
    title: str
    score: float  # final score, the order of the answer
    retrieval_score: float | None = None  # item embedding . query (None: not retrieved)
    ranker_score: float | None = None  # the ranker's probability (None: the ranker did not score it)
    source: str = "model"  # "model" or "popular" (fallback)
    popularity: float | None = None  # popular items: interactions as a share of the top one's
    boosts: tuple[dict, ...] = ()  # {"id", "name", "factor"} of the boosts that matched
    promotions: tuple[dict, ...] = ()  # {"id", "name", "threshold", "applied"} of the promotions that matched


@dataclass
class Recommendation:
    items: list[ScoredItem]
    model_version: int | None
    reason: str
    candidates: int = 0  # how deep retrieval went (0: no retrieval)
    explain: dict[str, Any] = field(default_factory=dict)
    # Seconds until a promotion starts or ends (None: none upcoming): a cached answer must not outlive it.
    valid_for: float | None = None


# --- filtering ----------------------------------------------------------------------------------------


def consumed_products(
    tenant_id: int, customer_pk: int | None, days: int | None = None, *,
    event_types: Collection[str] = ("purchase", "rating"),
) -> np.ndarray:
    """Products the customer consumed: has an event of one of `event_types` for (within the last `days`;
    None: ever; 0: none are excluded)."""
    if customer_pk is None or days == 0 or not event_types:
        return np.zeros(0, dtype=np.int64)
    qs = Event.objects.for_tenant(tenant_id).filter(customer_id=customer_pk, event_type__in=list(event_types))
    if days is not None:
        qs = qs.filter(ts__gte=timezone.now() - dt.timedelta(days=days))
    return np.fromiter(qs.values_list("product_id", flat=True).distinct(), dtype=np.int64)


Step = tuple[dict[str, Any], Callable[[CandidateTable], np.ndarray]]


@dataclass
class Filters:
    """The masks one request applies, in order: built-in ones, the request's, then the tenant's rules."""

    rules: CompiledRules
    endpoint: str
    context: Context = field(default_factory=Context)
    exclusions: dict[str, np.ndarray] = field(default_factory=dict)  # name -> product pks

    @property
    def excluded_count(self) -> int:
        return sum(len(v) for v in self.exclusions.values())

    def steps(self) -> list[Step]:
        steps: list[Step] = [({"name": "deleted", "kind": "builtin"}, lambda t: ~t.deleted)]
        if self.rules.settings.exclude_out_of_stock:  # unavailable, or tracked stock <= 0
            steps.append(({"name": "out_of_stock", "kind": "builtin"}, lambda t: t.in_stock))
        for name, pks in self.exclusions.items():
            if len(pks):
                steps.append(({"name": name, "kind": "builtin"}, lambda t, pks=pks: ~np.isin(t.pks, pks)))
        ctx = self.context
        if ctx.category:
            steps.append(({"name": "context.category", "kind": "context"},
                          lambda t: t.has_any(t.categories, [ctx.category])))
        if ctx.price_min is not None or ctx.price_max is not None:
            def in_range(t: CandidateTable) -> np.ndarray:
                keep = ~np.isnan(t.price)
                if ctx.price_min is not None:
                    keep &= np.nan_to_num(t.price, nan=-np.inf) >= ctx.price_min
                if ctx.price_max is not None:
                    keep &= np.nan_to_num(t.price, nan=np.inf) <= ctx.price_max
                return keep
            steps.append(({"name": "context.price", "kind": "context"}, in_range))
        for rule in self.rules.rules_for(self.endpoint):
            steps.append(({"id": rule.id, "name": rule.name, "kind": rule.kind}, rule.keep))
        return steps

    def apply(self, table: CandidateTable) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(rows that pass every step, what each step removed of what the previous ones had kept)."""
        keep = np.ones(len(table), dtype=bool)
        summary = []
        for info, mask in self.steps():
            passed = keep & mask(table)
            summary.append({**info, "removed": int(keep.sum() - passed.sum())})
            keep = passed
        return keep, summary


# --- stages -----------------------------------------------------------------------------------------


@dataclass
class Segment:
    """Candidates of one source over one table: the rows that passed, with their scores (aligned)."""

    table: CandidateTable
    rows: np.ndarray
    ranking: np.ndarray  # what orders the segment (ranker or retrieval or popularity)
    retrieval: np.ndarray | None
    source: str
    summary: dict[str, Any]
    scored_by: str = "retrieval"  # "ranker", "retrieval" or "popularity": what `ranking` holds


def _promoted_items(model: ServedModel, filters: Filters) -> np.ndarray:
    """Item indices of the products listed by the tenant's active promotions (those the model knows)."""
    promoted = model.item_indices(filters.rules.promoted_pks(timezone.now()))
    return promoted[promoted >= 0]


def _retrieve(
    tenant_id: int, model: ServedModel, query: np.ndarray, k: int, filters: Filters, promoted: np.ndarray
) -> tuple[Segment, np.ndarray]:
    """Candidates for one query vector that pass the filters, retrieving deeper while they bite; the
    `promoted` items join them. Returns the segment (ranking = retrieval score) and the candidates' item
    indices (aligned with rows)."""
    cap = filters.rules.settings.max_per_category
    limit = min(model.n_items, MAX_CANDIDATES)
    n = min(limit, max(model.num_candidates, 4 * k + filters.excluded_count))
    rounds = 0
    while True:
        rounds += 1
        hits = model.search(query[None, :], n)
        hit = hits.ids[0] >= 0
        items, retrieval = hits.ids[0][hit].astype(np.int64), hits.scores[0][hit].astype(np.float64)
        injected = promoted[~np.isin(promoted, items)]
        if len(injected):  # listed promoted products join the candidates with their own retrieval score
            embeddings = model.item_rows(injected)
            items = np.concatenate([items, injected])
            retrieval = np.concatenate([retrieval, (embeddings @ query.astype(np.float32)).astype(np.float64)])
        table = load_candidates(tenant_id, model.product_pks[items], filters.rules.attribute_keys)
        keep, steps = filters.apply(table)
        # A shard left out would be asked again, and wait out its timeout again, for every deeper round.
        if capped_count(table.leaf_category[keep], cap) >= k or n >= limit or hits.degraded:
            break
        n = min(limit, n * 4)
    rows = np.flatnonzero(keep)
    summary = {"depth": n, "rounds": rounds, "candidates": len(table), "promoted_added": len(injected),
               "after_filters": len(rows), "filters": steps}
    if hits.shards:  # searched over shard servers: how many, and which did not answer (a partial answer)
        summary["shards"] = {"asked": hits.shards, "missing": hits.missing}
        if hits.degraded:
            log.warning("tenant %s: retrieval without %d of %d shards: %s", tenant_id, len(hits.missing),
                        hits.shards, hits.missing)
    return Segment(table, rows, retrieval[rows], retrieval[rows], "model", summary), items[rows]


def _popular(
    tenant_id: int, k: int, filters: Filters, *, window_days: int = POPULAR_WINDOW_DAYS,
    taken: np.ndarray | None = None, have_categories: np.ndarray | None = None,
) -> Segment:
    """The most interacted-with products over the trailing window that pass the filters, score = share of
    the top one. The window ends at the tenant's newest event rather than now, so a shop whose feed paused
    (or a historical demo data set) still has a meaningful "recent"; while it holds fewer than k products
    that pass, it widens (x4) until it does or it covers the whole history, so a back-filled shop's first
    fresh event does not leave a window of one event."""
    taken = np.zeros(0, dtype=np.int64) if taken is None else taken
    have = np.zeros(0, dtype=np.dtypes.StringDType()) if have_categories is None else have_categories
    span = Event.objects.for_tenant(tenant_id).aggregate(latest=Max("ts"), earliest=Min("ts"))
    if span["latest"] is None or k <= 0:
        return Segment(empty_table(), np.zeros(0, np.int64), np.zeros(0), None, "popular",
                       {"considered": 0, "after_filters": 0, "filters": [], "window_days": window_days},
                       "popularity")
    days = window_days
    while True:
        since = span["latest"] - dt.timedelta(days=days)
        seg, enough = _popular_since(tenant_id, k, filters, since, taken, have)
        if enough or since < span["earliest"]:
            break
        days *= 4
    seg.summary["window_days"] = days
    return seg


def _popular_since(
    tenant_id: int, k: int, filters: Filters, since: dt.datetime, taken: np.ndarray, have: np.ndarray,
) -> tuple[Segment, bool]:
    """Popular products with events after `since`, and whether k of them pass the filters and the cap."""
    positive = [name for name, weight in event_weights(tenant_id).items() if weight > 0]
    qs = Event.objects.for_tenant(tenant_id).filter(ts__gt=since, event_type__in=positive, product__deleted=False)
    category = filters.context.category
    if category:  # narrows the SQL early; the mask below is the authority
        if connection.vendor == "postgresql":
            qs = qs.filter(product__category_path__contains=[category])
        else:  # SQLite has no JSON containment: match the quoted element in the stored text
            qs = qs.filter(product__category_path__icontains=json.dumps(category))
    ranked = qs.values("product_id").annotate(n=Count("id")).order_by("-n", "product_id")
    cap = filters.rules.settings.max_per_category
    limit = max(50, 4 * (k + len(taken)) + filters.excluded_count)
    while True:
        rows = list(ranked.values_list("product_id", "n")[:limit])
        pks = np.array([r[0] for r in rows], dtype=np.int64)
        counts = np.array([r[1] for r in rows], dtype=np.float64)
        table = load_candidates(tenant_id, pks, filters.rules.attribute_keys)
        keep, steps = filters.apply(table)
        if len(taken):
            keep &= ~np.isin(pks, taken)
        enough = capped_count(np.concatenate([have, table.leaf_category[keep]]), cap) >= k
        if enough or len(rows) < limit or limit >= MAX_POPULAR:
            break
        limit = min(MAX_POPULAR, limit * 4)
    kept = np.flatnonzero(keep)
    top = counts[kept].max() if len(kept) else 1.0
    share = np.round(counts[kept] / top, 6)
    summary = {"considered": len(rows), "after_filters": len(kept), "filters": steps}
    return Segment(table, kept, share, None, "popular", summary, "popularity"), enough


def _score(
    tenant_id: int, model: ServedModel, customer_pk: int | None, history: tuple[np.ndarray, np.ndarray],
    items: np.ndarray, retrieval: np.ndarray, activity: list[tuple] | None = None, cut: History | None = None,
    ranker: ranking.Ranker = ranking.score,
) -> tuple[np.ndarray, str]:
    """(scores, source): ranker probabilities of the candidates in one call, or the retrieval scores with
    the reason (`ranking.ScoreSource`; "retrieval:ranker_failed" when it raised: a valid request must not
    fail because scoring did)."""
    if len(items) == 0:
        return retrieval, ranking.ScoreSource.RANKER
    try:
        result = ranker(tenant_id, model, customer_pk, history[0], history[1], items,
                        retrieval.astype(np.float32), activity=activity, cut=cut)
        scores = np.asarray(result.scores, dtype=np.float64)
        if scores.shape != retrieval.shape or not np.isfinite(scores).all():
            raise ValueError(f"ranker returned shape {scores.shape} for {retrieval.shape} candidates or non-finite")
        return scores, result.source
    except Exception:
        log.exception("ranker failed for tenant %s; ordering by retrieval score", tenant_id)
        return retrieval, "retrieval:ranker_failed"


def _ranker_rows(items: np.ndarray, promoted: np.ndarray, categories: np.ndarray, depth: int, k: int,
                 cap: int | None) -> np.ndarray:
    """Which surviving candidates (in retrieval order) to score: the ranker was trained on retrieval's
    top `depth` candidates and its rank feature never saw deeper ones, so deeper survivors are dropped
    when the head alone fills k (listed promoted products, appended after them, always stay)."""
    head = np.arange(len(items)) < depth
    if head.all() or capped_count(categories[head], cap) < k:
        return np.arange(len(items))
    return np.flatnonzero(head | np.isin(items, promoted))


# --- ordering and the answer ----------------------------------------------------------------------------


def _assemble(
    tenant_id: int, k: int, filters: Filters, segments: list[Segment], explain: dict[str, Any],
    reranker: Reranker | None = None,
) -> list[ScoredItem]:
    rules, now = filters.rules, timezone.now()
    boosts, promotions = rules.boosts_for(filters.endpoint), rules.active_promotions(now)
    adjusted: list[tuple[Segment, Adjusted]] = []
    for seg in segments:
        if len(seg.rows):
            adjusted.append((seg, adjust(seg.table, seg.rows, seg.ranking, boosts, promotions)))
    if not adjusted:
        explain["diversity"] = {"max_per_category": rules.settings.max_per_category, "removed": 0}
        return []
    categories = np.concatenate([seg.table.leaf_category[seg.rows[adj.order]] for seg, adj in adjusted])
    refs = [(s, i) for s, (_, adj) in enumerate(adjusted) for i in adj.order.tolist()]
    keep = diversity_keep(categories, rules.settings.max_per_category)
    chosen = np.flatnonzero(keep)[:k]
    last = int(chosen[-1]) + 1 if len(chosen) else 0
    explain["diversity"] = {"max_per_category": rules.settings.max_per_category,
                            "removed": int((~keep[:last]).sum())}
    items = []
    for pos in chosen.tolist():
        s, i = refs[pos]
        seg, adj = adjusted[s]
        row = int(seg.rows[i])
        items.append(ScoredItem(
            product_pk=int(seg.table.pks[row]), external_id=str(seg.table.external_id[row]),
            title=str(seg.table.title[row]), score=float(adj.scores[i]),
            retrieval_score=None if seg.retrieval is None else float(seg.retrieval[i]),
            ranker_score=float(seg.ranking[i]) if seg.scored_by == "ranker" else None, source=seg.source,
            popularity=float(seg.ranking[i]) if seg.scored_by == "popularity" else None,
            boosts=tuple({"id": b.id, "name": b.name, "factor": b.factor} for b, m in adj.boosts if m[i]),
            promotions=tuple({"id": p.id, "name": p.name, "threshold": p.threshold, "applied": bool(lifted[i])}
                             for p, matched, lifted in adj.promotions if matched[i]),
        ))
    items, explain["reranker"] = rerank_head(
        tenant_id, items, {"endpoint": filters.endpoint, **filters.context.as_dict()}, reranker)
    return items


def _answer(
    tenant_id: int, k: int, filters: Filters, segments: list[Segment], model_version: int | None, reason: str,
    *, depth: int = 0, scoring: str | None = None, reranker: Reranker | None = None,
) -> Recommendation:
    explain: dict[str, Any] = {
        "endpoint": filters.endpoint,
        "context": filters.context.as_dict(),
        "rules_generation": filters.rules.generation,
        "retrieval": None,
        "scoring": scoring,
        "popular": None,
    }
    for seg in segments:
        explain["retrieval" if seg.source == "model" else "popular"] = seg.summary
    items = _assemble(tenant_id, k, filters, segments, explain, reranker)
    if explain["popular"] is not None:
        explain["popular"]["used"] = sum(1 for i in items if i.source == "popular")
    valid_for = filters.rules.seconds_until_change(timezone.now())
    if not items and _filtered_out(tenant_id, filters, segments):
        reason = Reason.FILTERED_OUT
    return Recommendation(items, model_version, reason, depth, explain, valid_for)


def _filtered_out(tenant_id: int, filters: Filters, segments: list[Segment]) -> bool:
    """Whether filters removed the candidates an empty answer would otherwise have had (not: the shop has
    nothing to recommend). A step that removed something says so; a category also narrows the popular
    products' SQL before any step runs, so with nothing removed it is to blame when the shop has popular
    products at all."""
    if any(step["removed"] for seg in segments for step in seg.summary.get("filters", ())):
        return True
    if not filters.context.category:
        return False
    positive = [name for name, weight in event_weights(tenant_id).items() if weight > 0]
    return Event.objects.for_tenant(tenant_id).filter(event_type__in=positive, product__deleted=False).exists()


def _with_fallback(
    tenant_id: int, k: int, filters: Filters, model_seg: Segment | None,
) -> list[Segment]:
    """The model's segment, then popular items for what the filters and the cap left missing."""
    segments = [model_seg] if model_seg is not None else []
    have = model_seg.table.leaf_category[model_seg.rows] if model_seg is not None else None
    count = capped_count(have, filters.rules.settings.max_per_category) if have is not None else 0
    if count < k:
        taken = model_seg.table.pks[model_seg.rows] if model_seg is not None else None
        segments.append(_popular(tenant_id, k, filters, taken=taken, have_categories=have))
    return segments


def _filters(
    tenant_id: int, endpoint: str, context: Context | None, exclude: Collection[int],
    customer_pk: int | None = None, events: CustomerEvents | None = None, rules: CompiledRules | None = None,
) -> Filters:
    rules = rules or compiled_rules(tenant_id)
    context = context or Context()
    exclusions = {"request_exclude": np.asarray(sorted(set(exclude)), dtype=np.int64)}
    if context.product_pk is not None:
        exclusions["current_product"] = np.array([context.product_pk], dtype=np.int64)
    if events is not None:
        exclusions["consumed"] = events.consumed
    elif customer_pk is not None:
        settings = rules.settings
        exclusions["consumed"] = consumed_products(tenant_id, customer_pk, settings.exclude_consumed_days,
                                                   event_types=settings.consumed_event_types)
    return Filters(rules, endpoint, context, exclusions)


def recommend(
    tenant_id: int,
    customer_pk: int | None,
    *,
    session_id: str | None = None,
    k: int = 10,
    exclude: Collection[int] = (),
    context: Context | None = None,
    customer_external_id: str | None = None,
    ranker: ranking.Ranker = ranking.score,
    reranker: Reranker | None = None,
) -> Recommendation:
    """Top-k products for a customer (None: unknown; then the session's events alone personalise), named
    by row id or, with `customer_pk` None, by the shop's id (resolved with the customer's events).
    `ranker` scores the filtered candidates (the active version's DLRM ranker, `ranking.score`); `reranker`
    may reorder the answer's head (a bandit variant's, serving/bandit.py)."""
    model = served_model(tenant_id)
    rules = compiled_rules(tenant_id)
    events = read_customer_events(
        tenant_id, customer_pk, recent_limit=2 * model.retrieval.history_len if model is not None else 0,
        consumed_types=rules.settings.consumed_event_types, consumed_days=rules.settings.exclude_consumed_days,
        external_id=customer_external_id,
    )
    if events is not None:
        customer_pk = events.customer_pk
    elif customer_pk is None and customer_external_id:  # the embedded SQLite reads the id on its own
        customer_pk = customer_state.customer_pk(tenant_id, customer_external_id)
    filters = _filters(tenant_id, Endpoint.RECOMMENDATIONS, context, exclude, customer_pk, events, rules)
    if model is None:
        return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, None), None,
                       Reason.NO_ACTIVE_MODEL, reranker=reranker)
    retrieval = model.retrieval
    history_pks, weights = recent_history(tenant_id, customer_pk, session_id, retrieval.history_len,
                                          events.recent if events is not None else None)
    items = model.item_indices(history_pks)
    known = items >= 0  # products newer than the model carry no embedding yet
    items, weights = items[known], weights[known]
    customer = model.customer_index(customer_pk)
    if customer < 0 and len(items) == 0:
        return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, None), model.version_id,
                       Reason.UNKNOWN_CUSTOMER, reranker=reranker)
    history = make_history([items.tolist()], [weights.tolist()], max_len=retrieval.history_len,
                           recency_decay=retrieval.recency_decay)
    query = forward.embed_customers(retrieval, np.array([customer], dtype=np.int64), history)[0]
    promoted = _promoted_items(model, filters)
    seg, candidate_items = _retrieve(tenant_id, model, query, k, filters, promoted)
    keep = _ranker_rows(candidate_items, promoted, seg.table.leaf_category[seg.rows], model.num_candidates, k,
                        filters.rules.settings.max_per_category)
    seg.rows, seg.retrieval, candidate_items = seg.rows[keep], seg.retrieval[keep], candidate_items[keep]
    seg.summary["scored"] = len(keep)
    activity = events.activity if events is not None else None
    # The ranker reads the history the customer was embedded with: cut by the same rules (make_history).
    seg.ranking, scoring = _score(tenant_id, model, customer_pk, (items, weights), candidate_items, seg.retrieval,
                                  activity, cut=history, ranker=ranker)
    seg.scored_by = "ranker" if scoring == ranking.ScoreSource.RANKER else "retrieval"
    return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, seg), model.version_id,
                   Reason.PERSONALIZED, depth=seg.summary["depth"], scoring=scoring,
                   reranker=reranker)


def similar_items(
    tenant_id: int, product_pk: int, *, k: int = 10, exclude: Collection[int] = (), context: Context | None = None,
) -> Recommendation:
    """Item-to-item: nearest items of the product's embedding, never the product itself."""
    context = context or Context()
    context = Context(context.page_type, product_pk, context.category, context.price_min, context.price_max)
    filters = _filters(tenant_id, Endpoint.SIMILAR, context, exclude)
    model = served_model(tenant_id)
    if model is None:
        return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, None), None,
                       Reason.NO_ACTIVE_MODEL)
    item = int(model.item_indices(np.array([product_pk]))[0])
    if item < 0:
        return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, None), model.version_id,
                       Reason.PRODUCT_NOT_IN_MODEL)
    query = model.item_rows(np.array([item], dtype=np.int64))[0]
    seg, _ = _retrieve(tenant_id, model, query, k, filters, _promoted_items(model, filters))
    return _answer(tenant_id, k, filters, _with_fallback(tenant_id, k, filters, seg), model.version_id,
                   Reason.SIMILAR, depth=seg.summary["depth"], scoring="retrieval")


def popular(
    tenant_id: int, k: int, *, window_days: int = POPULAR_WINDOW_DAYS, exclude: Collection[int] = (),
    context: Context | None = None,
) -> Recommendation:
    """The /popular answer: popular products passing the tenant's rules for the popular endpoint."""
    filters = _filters(tenant_id, Endpoint.POPULAR, context, exclude)
    seg = _popular(tenant_id, k, filters, window_days=window_days)
    return _answer(tenant_id, k, filters, [seg], None, Reason.POPULAR)


def recent_history(
    tenant_id: int, customer_pk: int | None, session_id: str | None, limit: int,
    customer_rows: list[tuple] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(product pks, event weights), oldest first: the customer's latest events (newest first through
    the (tenant, customer, -ts) index) plus those of the current session, weighted as in training.
    `customer_rows`: the customer's latest 2 x `limit` events already read (serving.customer_state), their
    times in unix seconds."""
    fields = ("id", "ts", "product_id", "event_type", "value")
    # Impressions and other zero-weight types are dropped below: read a few more than `limit`. (No
    # queryset is built when nothing is read: building one is a tenth of a millisecond of the hot path.)
    wanted = []
    if customer_pk is not None and customer_rows is None:
        wanted.append(Event.objects.for_tenant(tenant_id).filter(customer_id=customer_pk))
    if session_id:  # an anonymous visitor's session, or a known customer's pre-login one
        wanted.append(Event.objects.for_tenant(tenant_id).filter(session_id=session_id))
    read = [
        (i, ts.timestamp(), *rest)
        for qs in wanted for i, ts, *rest in qs.order_by("-ts", "-id").values_list(*fields)[: 2 * limit]
    ]
    rows = {r[0]: r for r in [*(customer_rows or ()), *read]}
    weights = online_features.cached_event_weights(tenant_id)
    products, kept = [], []
    for _, _, product, kind, value in sorted(rows.values(), key=lambda r: (r[1], r[0])):
        w = weights.get(kind, 0.0) * ((value or 0.0) if kind == "rating" else 1.0)
        if w > 0:
            products.append(product)
            kept.append(w)
    return np.array(products[-limit:], dtype=np.int64), np.array(kept[-limit:], dtype=np.float32)
