"""Contribution bounding per end customer, the privacy unit (docs/privacy.md, "What one customer can change").

Within one shop each customer adds at most `max_per_key` to the count of at most `max_keys` distinct keys:
the keys of their most recent interactions, chosen from their own events alone, so that adding or removing
one customer changes the shop's count vector by at most `max_keys * max_per_key` in L1 norm and by at most
`max_per_key` on any one key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    max_keys: int  # distinct keys one customer may contribute to
    max_per_key: int  # what one customer may add to one key's count

    def __post_init__(self) -> None:
        if self.max_keys < 1 or self.max_per_key < 1:
            raise ValueError("contribution bounds must be at least 1")

    @property
    def l1_sensitivity(self) -> int:
        return self.max_keys * self.max_per_key


def bounded_counts(
    interactions: Iterable[tuple[Hashable, str | None]], bounds: Bounds
) -> Counter[str]:
    """Per key, the bounded contributions of one shop's customers.

    `interactions` are (customer, key) pairs, newest first; pairs without a key are skipped.
    """
    per_customer: dict[Hashable, Counter[str]] = defaultdict(Counter)
    for customer, key in interactions:
        if key is None:
            continue
        mine = per_customer[customer]
        if key not in mine and len(mine) >= bounds.max_keys:
            continue  # this customer already gave their quota of keys
        if mine[key] < bounds.max_per_key:
            mine[key] += 1
    totals: Counter[str] = Counter()
    for mine in per_customer.values():
        totals.update(mine)
    return totals
