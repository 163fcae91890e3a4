"""One shop's contribution: its catalog's keys and its customers' bounded counts per key (or per pair of keys
bought by one customer, for co_purchase).

Runs inside the shop's tenant context: it reads that shop's rows only, and returns counts, never rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from privacy.bounding import Bounds, bounded_counts
from privacy.keys import category_key, content_tokens, product_key
from recs.models import Event, Product
from tenants.context import tenant_context

# Impressions are what the shop showed, not what the customer chose.
IGNORED_EVENT_TYPES = ("impression",)

KEY_FUNCTIONS: dict[str, Callable[[dict], str | None]] = {
    "product_popularity": lambda p: product_key(
        title=p["title"], brand=p["brand"], category_path=p["category_path"], attributes=p["attributes"]
    ),
    "category_popularity": lambda p: category_key(p["category_path"]),
}
KEY_FUNCTIONS["product_trend"] = KEY_FUNCTIONS["co_purchase"] = KEY_FUNCTIONS["product_popularity"]


def pair_key(a: str, b: str) -> str:
    """The key of an unordered pair of product keys."""
    first, second = sorted((a, b))
    return f"{first} + {second}"


def _pairs(interactions: Iterator, domain: set[str]) -> Iterator:
    """(customer, pair key) for every new distinct domain key of a customer with each of their earlier ones,
    newest first: bounding then keeps each customer's most recent pairs."""
    seen: dict = {}
    for unit, key in interactions:
        if key not in domain:
            continue
        mine = seen.setdefault(unit, [])
        if key in mine:
            continue
        for earlier in mine:
            yield unit, pair_key(key, earlier)
        mine.append(key)


def _product_keys(tenant_id: int, kind: str) -> dict[int, str | None]:
    key_of = KEY_FUNCTIONS[kind]
    rows = Product.objects.for_tenant(tenant_id).filter(deleted=False).values(
        "id", "title", "brand", "category_path", "attributes"
    )
    return {row["id"]: key_of(row) for row in rows.iterator(chunk_size=2000)}


def _interactions(tenant_id: int, start: datetime, end: datetime, keys: dict[int, str | None]) -> Iterator:
    events = (
        Event.objects.for_tenant(tenant_id)
        .filter(ts__gte=start, ts__lt=end, product_id__isnull=False)
        .exclude(event_type__in=IGNORED_EVENT_TYPES)
        .order_by("-ts")
        .values_list("customer_id", "session_id", "product_id")
    )
    for customer_id, session_id, product_id in events.iterator(chunk_size=5000):
        # An anonymous session stands for its (unknown) customer.
        unit = ("c", customer_id) if customer_id is not None else ("s", session_id) if session_id else None
        if unit is not None:
            yield unit, keys.get(product_id)


def shop_contribution(
    tenant_id: int, kind: str, start: datetime, end: datetime, bounds: Bounds, pair_domain: set[str] | None = None,
) -> tuple[set[str], Counter[str]]:
    """(the keys of the shop's catalog, its customers' bounded counts per key) over [start, end).

    With `pair_domain` (co_purchase), the keys are the pairs of the shop's catalog keys within that domain and
    each customer counts once for each of at most `bounds.max_keys` pairs of products they took."""
    with tenant_context(tenant_id):
        keys = _product_keys(tenant_id, kind)
        interactions = _interactions(tenant_id, start, end, keys)
        if pair_domain is not None:
            interactions = _pairs(interactions, pair_domain)
        counts = bounded_counts(interactions, bounds)
    catalog = {k for k in keys.values() if k is not None}
    if pair_domain is not None:
        mine = sorted(catalog & pair_domain)
        catalog = {pair_key(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]}
    return catalog, counts


def shop_baskets(
    tenant_id: int, start: datetime, end: datetime, max_items: int
) -> tuple[list[list[str]], list[list[int]]]:
    """(content tokens of each catalog product, per customer the catalog positions of their at most
    `max_items` most recent distinct products over [start, end)): the shared model's data from one shop.

    The bound is per customer and chosen from their own events alone (docs/privacy.md)."""
    with tenant_context(tenant_id):
        rows = list(Product.objects.for_tenant(tenant_id).filter(deleted=False).order_by("id").values(
            "id", "title", "brand", "category_path"))
        position = {row["id"]: i for i, row in enumerate(rows)}
        tokens = [content_tokens(title=r["title"], brand=r["brand"], category_path=r["category_path"]) for r in rows]
        per_unit: dict = {}
        for unit, product_id in _interactions(tenant_id, start, end, {pk: pk for pk in position}):
            if product_id is None:
                continue  # a deleted product
            mine = per_unit.setdefault(unit, [])
            if len(mine) < max_items and position[product_id] not in mine:
                mine.append(position[product_id])
    return tokens, list(per_unit.values())
