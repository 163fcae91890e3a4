"""What the page and the API tell a shop about sharing, in plain words (one text for both)."""

from __future__ import annotations

WHAT_IS_SHARED = (
    "When you opt in, your shop helps build shared statistics with other shops that opted in: how popular "
    "a product (matched by its GTIN/EAN barcode, else its brand and category, else the words of its title) "
    "and each category is across all of them, what is rising this week, and which products are bought "
    "together; and a shared model that learns from product titles, brands and categories which products go "
    "together, trained with random noise and a cap on what any one customer can teach it. Only these totals "
    "and that model are shared, with random noise added so "
    "that no single customer of any shop can be told apart in them. No row of your data (no customer, no "
    "order, no event, no product list) is ever shown to another shop, and you never see theirs."
)
LIMITS = (
    "Each customer counts for at most a few products per month, and each shop's weight is capped and the "
    "most extreme shops are left out of every total, so neither one customer nor one shop can move the "
    "totals much. Every release spends part of your monthly privacy budget (epsilon); when it is spent, "
    "your shop is left out of further releases that month rather than sharing with less noise."
)
WAY_OUT = (
    "You can opt out at any time. From then on nothing of your shop goes into new statistics. Statistics "
    "already released while you took part stay released: they cannot be called back, but they are noisy "
    "totals that contain no row of yours."
)


def as_dict() -> dict[str, str]:
    return {"what_is_shared": WHAT_IS_SHARED, "limits": LIMITS, "way_out": WAY_OUT}

# What each kind of release or charge is called on the page and in the API (the ledger's `kind` stays the code).
KIND_LABELS = {
    "product_popularity": "Cross-shop popularity",
    "category_popularity": "Cross-shop popularity of categories",
    "product_trend": "Trend over the last 7 days",
    "co_purchase": "Bought together",
    "shared_model": "Shared cold-start model",
}


def kind_label(kind: str) -> str:
    """The plain-language name of a release kind (the code itself for a kind without one)."""
    return KIND_LABELS.get(kind, kind)
