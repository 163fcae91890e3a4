"""Live previews of answers on the dashboard: what a customer would be recommended now, what is similar to a
product, and what changed since the previous preview.

Answers come from the functions the API answers with (serving/answers.py), uncached and with `explain`,
so a preview is exactly what the shop's site would get at this moment under the current model, rules and
promotions. This module only reshapes the explained answer for the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from recs.dashboard import queries
from serving import answers

PREVIEW_K = 10
SESSION_KEY = "dashboard_preview"
MAX_CUSTOMER_ID = 128  # Customer.external_id's length

REASONS = {
    "personalized": "Personalised by the serving model from this customer's events.",
    "similar_items": "Products the serving model places nearest to this one.",
    "popular": "The most popular products that pass the rules.",
    "no_active_model": "No model is serving yet: the most popular products that pass the rules.",
    "unknown_customer": "The serving model does not know this customer yet: the most popular products that "
                        "pass the rules.",
    "product_not_in_model": "The serving model does not know this product yet: the most popular products "
                            "that pass the rules.",
    "filtered_out": "The filters removed every candidate: the rules, the built-in ones (out of stock, already "
                    "had) or the request's.",
}
BUILTIN_FILTERS = {
    "deleted": "Deleted products",
    "out_of_stock": "Out of stock",
    "consumed": "Already had (recommendation settings)",
    "request_exclude": "Excluded by the request",
    "current_product": "The product itself",
    "context.category": "Category of the request",
    "context.price": "Price range of the request",
}


@dataclass(frozen=True)
class PreviewItem:
    rank: int
    id: str
    title: str
    score: float
    source: str  # "model" or "popular"
    retrieval_score: float | None
    ranker_score: float | None
    popularity: float | None
    boosts: list[dict]
    promotions: list[dict]
    product_pk: int | None  # None: a product the catalog no longer has (no page to link)
    change: str = ""  # "new", "up", "down" or "" (unchanged or nothing to compare with)
    previous_rank: int | None = None


@dataclass(frozen=True)
class FilterEffect:
    name: str
    kind: str
    removed: int
    rule_id: int | None


@dataclass(frozen=True)
class Preview:
    reason: str
    reason_text: str
    model_version: int | None
    items: list[PreviewItem]
    filters: list[FilterEffect]  # what each filter removed, retrieval's and the popular fallback's together
    diversity_removed: int
    diversity_cap: int | None
    compared: bool = False  # the items carry changes against a previous preview
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (id, title) no longer in the answer

    @property
    def removals(self) -> list[FilterEffect]:
        return [f for f in self.filters if f.removed]

    @property
    def changed(self) -> bool:
        return bool(self.dropped) or any(item.change for item in self.items)

    def remembered(self) -> list[list[str]]:
        """(id, title) of the items, small enough for the session."""
        return [[item.id, item.title] for item in self.items]


def _filters(explain: dict[str, Any]) -> list[FilterEffect]:
    totals: dict[tuple, FilterEffect] = {}
    for stage in ("retrieval", "popular"):
        for step in (explain.get(stage) or {}).get("filters", []):
            key = (step.get("kind"), step.get("name"), step.get("id"))
            name = BUILTIN_FILTERS.get(step.get("name"), step.get("name")) if step.get("id") is None else step["name"]
            before = totals.get(key)
            removed = int(step.get("removed", 0)) + (before.removed if before else 0)
            totals[key] = FilterEffect(name, str(step.get("kind")), removed, step.get("id"))
    return list(totals.values())


def _preview(tenant_id: int, answer: dict[str, Any], before: list[list[str]] | None) -> Preview:
    explain = answer.get("explain") or {}
    links = queries.product_pks(tenant_id, [item["id"] for item in answer["items"]])
    previous = {item_id: rank for rank, (item_id, _title) in enumerate(before or [], start=1)}
    items = []
    for rank, item in enumerate(answer["items"], start=1):
        info = item.get("explain") or {}
        change, was = "", previous.get(item["id"])
        if before is not None:
            change = "new" if was is None else "up" if was > rank else "down" if was < rank else ""
        items.append(PreviewItem(
            rank=rank, id=item["id"], title=item["title"], score=item["score"], source=info.get("source", ""),
            retrieval_score=info.get("retrieval_score"), ranker_score=info.get("ranker_score"),
            popularity=info.get("popularity"), boosts=info.get("boosts", []), promotions=info.get("promotions", []),
            product_pk=links.get(item["id"]), change=change, previous_rank=was,
        ))
    now_ids = {item.id for item in items}
    diversity = explain.get("diversity") or {}
    return Preview(
        reason=answer["reason"], reason_text=REASONS.get(answer["reason"], answer["reason"]),
        model_version=answer.get("model_version"), items=items, filters=_filters(explain),
        diversity_removed=int(diversity.get("removed") or 0), diversity_cap=diversity.get("max_per_category"),
        compared=before is not None,
        dropped=[(item_id, title) for item_id, title in before or [] if item_id not in now_ids],
    )


def customer_preview(tenant_id: int, customer_id: str, *, before: list[list[str]] | None = None,
                     k: int = PREVIEW_K) -> Preview:
    """What /v1/recommendations?customer_id=... would answer now, explained; `before` ((id, title) of an
    earlier preview) marks what changed since."""
    request = answers.RecommendRequest(customer_id=customer_id, k=k, explain=True)
    return _preview(tenant_id, answers.recommendations_answer(tenant_id, request, use_cache=False), before)


def similar_preview(tenant_id: int, product_pk: int, *, k: int = PREVIEW_K) -> Preview:
    """What /v1/products/{id}/similar would answer now, explained."""
    request = answers.SimilarRequest(k=k, explain=True)
    return _preview(tenant_id, answers.similar_answer(tenant_id, product_pk, request, use_cache=False), None)


# --- the preview panel of the Rules and Promotions pages --------------------------------------------------


@dataclass(frozen=True)
class Panel:
    customer_id: str
    customer: Any  # the Customer row, None for an id the shop has not sent
    preview: Preview


def panel(session: SessionBase, tenant_id: int, typed: str | None) -> Panel | None:
    """The preview panel for the customer id typed into its form (`typed`; None: the one previewed last in
    this session, so that a page reached after saving a rule shows the answer under the new rule, marked
    against the one before; ''; no preview). The session keeps one customer id and its last answer's items
    per shop."""
    key = f"{SESSION_KEY}:{tenant_id}"
    remembered = session.get(key) or {}
    if typed is not None:
        typed = typed.strip()[:MAX_CUSTOMER_ID]
        if not typed:
            session.pop(key, None)
            return None
    customer_id = typed if typed is not None else remembered.get("customer")
    if not customer_id:
        return None
    before = remembered.get("items") if remembered.get("customer") == customer_id else None
    result = customer_preview(tenant_id, customer_id, before=before)
    session[key] = {"customer": customer_id, "items": result.remembered()}
    return Panel(customer_id, queries.customer_by_external_id(tenant_id, customer_id), result)
