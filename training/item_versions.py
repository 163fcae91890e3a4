"""Item attributes as they were at any moment: the point-in-time join of the catalog's version history.

The catalog keeps every product's attribute versions (recs.ProductVersion, `valid_from <= t < valid_to`).
A training example at time t must see the item as it was at t: a ranker that learns from "was bought at
price bucket 5" while the item then cost bucket 7 learns the wrong thing, and one that reads a later price
or category learns from the future.

Layout (all NumPy, no per-example Python): every version is one row of an `ItemFeatures` whose rows are
versions (same vocabularies as the catalog's current features), sorted by (item, valid_from). The version
of item i valid at t is found with one `searchsorted` over the packed keys (i, valid_from), so a batch of
examples maps to version rows in O(batch * log V).

Before an item's first recorded version (events imported with history the catalog never had: a shop that
sends its catalog today and two years of orders) the first version stands in by default: it is the oldest
thing known about the item and never reflects a later change. `backfill_first=False` makes those reads the
"unknown" row instead (strict: nothing dated after t is read, at the cost of attribute-less examples).

Retrieval's item tower embeds each item once, as served (the latest version); only the ranker's examples,
which each have a time, read versions (`training.features.ranker_kjt_at`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.data import ItemFeatures, Jagged

# Keys pack (item, time) into one int64: 36 bits of seconds around 1970 (+-1,000 years) and 27 bits of item.
_TIME_BITS = 36
T_MIN = -(1 << (_TIME_BITS - 1))
T_MAX = (1 << (_TIME_BITS - 1)) - 1
MAX_ITEMS = 1 << (63 - _TIME_BITS)
ALWAYS = T_MIN  # valid_from of a version that has always been valid (an item with no recorded history)


def _pack(items: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return (np.asarray(items, np.int64) << _TIME_BITS) + (np.clip(np.asarray(ts, np.int64), T_MIN, T_MAX) - T_MIN)


@dataclass(frozen=True)
class ItemVersions:
    """Attribute versions of every item. Row r of `features` is version r (item `item[r]`, valid from
    `valid_from[r]` until the next version of the same item starts); the extra last row is "unknown"."""

    item: np.ndarray  # (V,) int64, non-decreasing
    valid_from: np.ndarray  # (V,) int64 unix seconds, non-decreasing within an item
    features: ItemFeatures  # V + 1 rows (the last: every feature "unknown")
    n_items: int
    backfill_first: bool = True
    _keys: np.ndarray = field(init=False, repr=False)
    _start: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        item = np.ascontiguousarray(self.item, dtype=np.int64)
        valid_from = np.ascontiguousarray(self.valid_from, dtype=np.int64)
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "valid_from", valid_from)
        if self.n_items > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} items")
        if len(item) != len(valid_from) or self.features.n_items != len(item) + 1:
            raise ValueError("ItemVersions needs one features row per version plus the unknown row")
        counts = np.bincount(item, minlength=self.n_items) if len(item) else np.zeros(self.n_items, np.int64)
        if len(counts) != self.n_items or (counts == 0).any():
            raise ValueError("every item needs at least one version, and only items 0..n_items-1 may have one")
        keys = _pack(item, valid_from)
        if len(keys) > 1 and (np.diff(keys) < 0).any():
            raise ValueError("versions must be sorted by (item, valid_from)")
        object.__setattr__(self, "_keys", keys)
        start = np.zeros(self.n_items + 1, dtype=np.int64)
        np.cumsum(counts, out=start[1:])
        object.__setattr__(self, "_start", start)

    @staticmethod
    def build(
        item: np.ndarray, valid_from: np.ndarray, features: ItemFeatures, n_items: int, *, backfill_first: bool = True
    ) -> ItemVersions:
        """From versions in any order (`features` has one row per version, no unknown row yet)."""
        order = np.lexsort((np.arange(len(item)), np.asarray(valid_from), np.asarray(item)))
        unknown = ItemFeatures.empty(1)
        rows = features.take(order)
        with_unknown = ItemFeatures(
            *(_concat(getattr(rows, k), getattr(unknown, k)) for k in ("category", "brand", "price_bucket",
                                                                      "title_tokens")),
            features.n_categories, features.n_brands, features.n_price_buckets, features.n_title_tokens,
        )
        return ItemVersions(np.asarray(item)[order], np.asarray(valid_from)[order], with_unknown, n_items,
                            backfill_first=backfill_first)

    @staticmethod
    def single(features: ItemFeatures) -> ItemVersions:
        """One version per item, valid at every moment (a catalog without history: benchmarks, tests)."""
        n = features.n_items
        return ItemVersions.build(np.arange(n), np.full(n, ALWAYS), features, n)

    @property
    def n_versions(self) -> int:
        return len(self.item)

    @property
    def unknown_row(self) -> int:
        return self.n_versions

    @property
    def latest_rows(self) -> np.ndarray:
        return self._start[1:] - 1

    def latest_features(self) -> ItemFeatures:
        """The catalog as of now (one row per item): what retrieval's item tower and serving see."""
        return self.features.take(self.latest_rows)

    def valid_to(self) -> np.ndarray:
        """End of each version's validity (the next version's start; T_MAX for the current one)."""
        out = np.full(self.n_versions, T_MAX, dtype=np.int64)
        same = self.item[1:] == self.item[:-1]
        out[:-1][same] = self.valid_from[1:][same]
        return out

    def rows_at(self, items: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Version row of each item as of each time: the last version with valid_from <= t (see the
        module doc for times before an item's first version)."""
        items = np.asarray(items, dtype=np.int64)
        ts = np.broadcast_to(np.asarray(ts, dtype=np.int64), items.shape)
        pos = np.searchsorted(self._keys, _pack(items, ts), side="right") - 1
        first = self._start[items]
        before = pos < first
        if before.any():
            pos = np.where(before, first if self.backfill_first else self.unknown_row, pos)
        return pos


def _concat(a: Jagged, b: Jagged) -> Jagged:
    return Jagged(np.concatenate([a.values, b.values]), np.concatenate([a.lengths, b.lengths]))
