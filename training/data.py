"""Plain array containers for one tenant's training data, and the KeyedJaggedTensor builders.

Everything here is NumPy in, NumPy (or torch) out: the Django side turns database rows into these
arrays, and every trainer, evaluator and benchmark consumes only these. Indices are dense int64
(0..n-1); the mapping to the tenant's own ids lives with the caller.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

ITEM_KEYS: tuple[str, ...] = ("item_id", "category", "brand", "price_bucket", "title_tokens")
CUSTOMER_KEYS: tuple[str, ...] = ("customer_id", "history", "attributes")


def _as(a: np.ndarray | Sequence, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


@dataclass(frozen=True)
class Jagged:
    """One variable-length id list per row: row r owns values[offsets[r]:offsets[r + 1]]."""

    values: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _as(self.values, np.int64))
        object.__setattr__(self, "lengths", _as(self.lengths, np.int64))
        if self.lengths.ndim != 1 or self.values.ndim != 1:
            raise ValueError("Jagged values and lengths must be 1-D")
        if int(self.lengths.sum()) != len(self.values):
            raise ValueError("Jagged lengths do not add up to the number of values")

    @staticmethod
    def from_single(ids: np.ndarray | Sequence[int]) -> Jagged:
        ids = _as(ids, np.int64)
        return Jagged(ids, np.ones(len(ids), dtype=np.int64))

    @staticmethod
    def from_lists(rows: Iterable[Sequence[int]]) -> Jagged:
        rows = [list(r) for r in rows]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        values = np.fromiter((v for r in rows for v in r), dtype=np.int64, count=int(lengths.sum()))
        return Jagged(values, lengths)

    @property
    def n_rows(self) -> int:
        return len(self.lengths)

    @cached_property
    def offsets(self) -> np.ndarray:
        # Kept: serving gathers a few hundred rows of a catalog-wide Jagged per request, and the cumulative
        # sum over a million rows each time was most of an uncached answer's CPU at that size.
        out = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=out[1:])
        return out

    @cached_property
    def single_valued(self) -> bool:
        """Every row holds exactly one value (brands, price buckets)."""
        return len(self.values) == len(self.lengths) and bool((self.lengths == 1).all())

    def take(self, rows: np.ndarray) -> Jagged:
        """Gather rows (vectorised, no Python loop over rows)."""
        rows = _as(rows, np.int64)
        if self.single_valued:  # serving gathers these per request: a plain gather
            return Jagged(self.values[rows], np.ones(len(rows), dtype=np.int64))
        starts = self.offsets[rows]
        lengths = self.lengths[rows]
        return Jagged(self.values[ragged_arange(starts, lengths)], lengths)


def ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    row_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64), lengths) + (np.arange(total) - row_start)


@dataclass(frozen=True)
class Interactions:
    """One row per event. `weight` is the event-type weight (view 1, cart 3, purchase 5, ...)."""

    customer: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    weight: np.ndarray
    n_customers: int
    n_items: int

    def __post_init__(self) -> None:
        for name, dtype in (("customer", np.int64), ("item", np.int64), ("ts", np.int64)):
            object.__setattr__(self, name, _as(getattr(self, name), dtype))
        object.__setattr__(self, "weight", _as(self.weight, np.float32))
        n = len(self.customer)
        if not (len(self.item) == len(self.ts) == len(self.weight) == n):
            raise ValueError("Interactions arrays must have the same length")
        if n and (self.customer.min() < 0 or self.customer.max() >= self.n_customers):
            raise ValueError("customer index out of range 0..n_customers-1")
        if n and (self.item.min() < 0 or self.item.max() >= self.n_items):
            raise ValueError("item index out of range 0..n_items-1")

    def __len__(self) -> int:
        return len(self.customer)

    def take(self, idx: np.ndarray) -> Interactions:
        return Interactions(
            self.customer[idx], self.item[idx], self.ts[idx], self.weight[idx], self.n_customers, self.n_items
        )

    def time_order(self) -> np.ndarray:
        """Row order by (customer, ts, original position): the order every split and history uses."""
        return np.lexsort((np.arange(len(self)), self.ts, self.customer))

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items).astype(np.int64)


@dataclass(frozen=True)
class ItemFeatures:
    """Per-item sparse features. Id 0 of every vocabulary means "unknown" and is a valid row."""

    category: Jagged
    brand: Jagged
    price_bucket: Jagged
    title_tokens: Jagged
    n_categories: int
    n_brands: int
    n_price_buckets: int
    n_title_tokens: int

    def __post_init__(self) -> None:
        n = self.category.n_rows
        for name, vocab in (
            ("category", self.n_categories),
            ("brand", self.n_brands),
            ("price_bucket", self.n_price_buckets),
            ("title_tokens", self.n_title_tokens),
        ):
            jag: Jagged = getattr(self, name)
            if jag.n_rows != n:
                raise ValueError(f"ItemFeatures.{name} has {jag.n_rows} rows, expected {n}")
            if len(jag.values) and (jag.values.min() < 0 or jag.values.max() >= vocab):
                raise ValueError(f"ItemFeatures.{name} id outside its vocabulary of {vocab}")

    @property
    def n_items(self) -> int:
        return self.category.n_rows

    @staticmethod
    def empty(n_items: int) -> ItemFeatures:
        """A catalog without attributes: every item gets the "unknown" id of each feature."""
        zero = Jagged.from_single(np.zeros(n_items, dtype=np.int64))
        return ItemFeatures(zero, zero, zero, zero, 1, 1, 1, 1)

    def take(self, rows: np.ndarray) -> ItemFeatures:
        return ItemFeatures(
            self.category.take(rows),
            self.brand.take(rows),
            self.price_bucket.take(rows),
            self.title_tokens.take(rows),
            self.n_categories,
            self.n_brands,
            self.n_price_buckets,
            self.n_title_tokens,
        )


@dataclass(frozen=True)
class CustomerFeatures:
    """Optional per-customer attribute ids (segment, country, ...); 0 = unknown."""

    attributes: Jagged
    n_attributes: int

    @staticmethod
    def empty(n_customers: int) -> CustomerFeatures:
        return CustomerFeatures(Jagged(np.zeros(0, np.int64), np.zeros(n_customers, np.int64)), 1)


_TOKEN_RE = re.compile(r"[a-z0-9]+")


def hash_tokens(texts: Iterable[str | None], n_buckets: int, *, min_len: int = 2) -> Jagged:
    """Lower-cased word tokens hashed into 1..n_buckets-1 (0 stays "unknown").

    crc32 rather than hash(): Python's string hash is salted per process, and the ids must be the
    same in the trainer, the server and the next training run.
    """
    rows = []
    for text in texts:
        toks = sorted({t for t in _TOKEN_RE.findall((text or "").lower()) if len(t) >= min_len})
        rows.append([1 + zlib.crc32(t.encode()) % (n_buckets - 1) for t in toks])
    return Jagged.from_lists(rows)


# ---------------------------------------------------------------------------------------------
# Histories: the recent events a customer tower pools over.


@dataclass(frozen=True)
class History:
    """Per-row jagged item list with pooling weights that sum to 1 per non-empty row."""

    items: Jagged
    weights: np.ndarray


def history_weights(event_weight: np.ndarray, lengths: np.ndarray, recency_decay: float) -> np.ndarray:
    """Pooling weight = event weight x decay^(positions from the newest), normalised per row.

    Recent events say more about the next one than old ones; position rather than wall-clock decay
    keeps the knob meaningful for tenants whose customers come back after days or after years.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(event_weight) == 0:
        return np.zeros(0, dtype=np.float32)
    row = np.repeat(np.arange(len(lengths)), lengths)
    ends = np.cumsum(lengths)
    age = np.repeat(ends, lengths) - 1 - np.arange(len(event_weight))
    w = np.maximum(event_weight.astype(np.float64), 1e-6) * np.power(recency_decay, age)
    sums = np.bincount(row, weights=w, minlength=len(lengths))
    return (w / sums[row]).astype(np.float32)


class HistoryIndex:
    """Each customer's events in time order, to cut "the last L events before position k" quickly."""

    def __init__(self, events: Interactions) -> None:
        order = events.time_order()
        self.item = events.item[order]
        self.weight = events.weight[order]
        self.ts = events.ts[order]
        self.customer = events.customer[order]
        counts = np.bincount(events.customer, minlength=events.n_customers)
        self.start = np.zeros(events.n_customers + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])

    def count(self, customers: np.ndarray) -> np.ndarray:
        return self.start[customers + 1] - self.start[customers]

    def before(self, positions: np.ndarray, customers: np.ndarray, max_len: int, recency_decay: float) -> History:
        """History of the events strictly before global sorted position `positions` (same customer)."""
        begin = np.maximum(self.start[customers], positions - max_len)
        lengths = positions - begin
        idx = ragged_arange(begin, lengths)
        weights = history_weights(self.weight[idx], lengths, recency_decay)
        return History(Jagged(self.item[idx], lengths), weights)

    def cut_before(self, positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Where the history predicting the event at each sorted position ends when it stops `offsets` events
        earlier (0: just before the event), never before the customer's first event."""
        return np.maximum(positions - offsets, self.start[self.customer[positions]])

    def latest(self, customers: np.ndarray, max_len: int, recency_decay: float) -> History:
        """History made of each customer's last `max_len` events."""
        customers = np.asarray(customers, dtype=np.int64)
        return self.before(self.start[customers + 1], customers, max_len, recency_decay)


def make_history(
    items: np.ndarray | Sequence[Sequence[int]],
    weights: np.ndarray | Sequence[Sequence[float]] | None = None,
    *,
    max_len: int = 50,
    recency_decay: float = 0.9,
) -> History:
    """Serving-side helper: histories from per-customer item lists, oldest first."""
    item_rows = [list(r)[-max_len:] for r in items]
    weight_rows = [[1.0] * len(r) for r in item_rows] if weights is None else [list(w)[-max_len:] for w in weights]
    if [len(r) for r in weight_rows] != [len(r) for r in item_rows]:
        raise ValueError("each history needs exactly one weight per item")
    jag = Jagged.from_lists(item_rows)
    w = np.array([x for r in weight_rows for x in r], dtype=np.float32)
    return History(jag, history_weights(w, jag.lengths, recency_decay))


# ---------------------------------------------------------------------------------------------
# KeyedJaggedTensor builders.


def build_kjt(
    keys: Sequence[str],
    parts: Sequence[Jagged],
    weights: Sequence[np.ndarray] | None,
    device: torch.device | None,
) -> KeyedJaggedTensor:
    """One KeyedJaggedTensor from per-key jagged parts (all with the same number of rows)."""
    values = torch.from_numpy(np.concatenate([p.values for p in parts]))
    lengths = torch.from_numpy(np.concatenate([p.lengths for p in parts]).astype(np.int32))
    w = None
    if weights is not None:
        w = torch.from_numpy(np.concatenate(weights).astype(np.float32))
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=list(keys), values=values, lengths=lengths, weights=w)
    return kjt.to(device) if device is not None else kjt


def item_kjt(
    features: ItemFeatures,
    rows: np.ndarray,
    device: torch.device | None = None,
    ids: np.ndarray | None = None,
) -> KeyedJaggedTensor:
    """Item-tower input for feature rows `rows` (keys: ITEM_KEYS).

    The id feature is `ids` (default: the rows themselves); a negative id means the model has no
    id row for that item (a product newer than the model) and yields an empty id bag.
    """
    items = _as(rows, np.int64)
    id_values = items if ids is None else _as(ids, np.int64)
    known = id_values >= 0
    ids_jag = Jagged(id_values[known], known.astype(np.int64))
    parts = [
        ids_jag,
        features.category.take(items),
        features.brand.take(items),
        features.price_bucket.take(items),
        features.title_tokens.take(items),
    ]
    return build_kjt(ITEM_KEYS, parts, None, device)


def _mean_weights(j: Jagged) -> np.ndarray:
    return (1.0 / np.repeat(np.maximum(j.lengths, 1), j.lengths)).astype(np.float32)


def customer_kjt(
    customers: np.ndarray,
    history: History,
    customer_features: CustomerFeatures | None = None,
    device: torch.device | None = None,
) -> KeyedJaggedTensor:
    """Customer-tower input (keys: CUSTOMER_KEYS), weighted so one EBC pools everything."""
    return build_kjt(CUSTOMER_KEYS, *customer_parts(customers, history, customer_features), device)


def customer_parts(
    customers: np.ndarray, history: History, customer_features: CustomerFeatures | None = None
) -> tuple[list[Jagged], list[np.ndarray]]:
    """The customer tower's per-key bags and their weights, in CUSTOMER_KEYS order.

    A negative customer index (a customer unknown to the model) gets an empty id bag, so the tower
    falls back to history and attributes.
    """
    customers = _as(customers, np.int64)
    known = customers >= 0
    ids = Jagged(customers[known], known.astype(np.int64))
    if customer_features is None:
        attrs = Jagged(np.zeros(0, np.int64), np.zeros(len(customers), np.int64))
    else:
        sub = customer_features.attributes.take(customers[known])
        lengths = np.zeros(len(customers), np.int64)
        lengths[known] = sub.lengths
        attrs = Jagged(sub.values, lengths)
    parts = [ids, history.items, attrs]
    weights = [np.ones(len(ids.values), np.float32), history.weights, _mean_weights(attrs)]
    return parts, weights


# ---------------------------------------------------------------------------------------------
# The split protocol.


def temporal_split(interactions: Interactions, test_fraction: float = 0.2) -> tuple[Interactions, Interactions]:
    """Per customer, the last `test_fraction` of events by time are test, the rest train.

    Every customer with at least two events gets at least one test and one train event; a
    customer with a single event keeps it in train (nothing to predict it from). Ties in time keep
    the input order, so a test event never precedes a train event of the same customer.
    """
    order = interactions.time_order()
    cust = interactions.customer[order]
    counts = np.bincount(cust, minlength=interactions.n_customers)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - start[cust]
    n = counts[cust]
    n_test = np.clip(np.rint(n * test_fraction).astype(np.int64), 1, np.maximum(n - 1, 0))
    is_test = rank >= n - n_test
    return interactions.take(np.sort(order[~is_test])), interactions.take(np.sort(order[is_test]))


def validation_split(train: Interactions, validation_fraction: float = 0.2) -> tuple[Interactions, Interactions]:
    """Carve a validation set out of train with exactly the test protocol (for tuning, early stop)."""
    return temporal_split(train, validation_fraction)
