"""Point-in-time ranker features: one implementation for training (as of each example's time) and
serving (as of now), so there is no train/serve skew and no future leakage.

Every feature of an example (customer c, candidate i, time t) is computed from the events the
context was built with that happened strictly before t: item popularity in trailing windows, item
age and recency, the customer's own activity and taste. Nothing at or after t is ever read.

The definitions come in pieces that both paths share:

* `ItemActivity.columns` — the item side (popularity windows, age, recency, mean weight) from indexes
  over events. Training asks it per example time; serving asks it once for every item as of a snapshot
  time (`item_snapshot`) and gathers rows of that matrix per request.
* `customer_columns` — the customer's event count and mean weight from two numbers (count, weight sum)
  that training reads from its index and serving from one indexed query.
* `CatalogFeatures.taste` — fit of a candidate to a history (category mix, price level, embedding
  similarity, item co-occurrence); training and serving pass the same kind of `History`. The embeddings
  and the co-occurrence table are the model's: learned from all the events the retrieval model was trained
  on, as serving has them, not cut at each example's time.
* `query_columns` / `dense_matrix` — the retrieval columns and the final column order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from training.cooccurrence import ItemNeighbours, item_neighbours
from training.data import History, HistoryIndex, Interactions, ItemFeatures, Jagged, build_kjt
from training.item_versions import ItemVersions
from training.models.ranker import RANKER_KEYS

DAY = 86_400
WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30, 180, 365)
SIMILARITY_HISTORY = 10

DENSE_FEATURES: tuple[str, ...] = (
    "retrieval_score",
    "retrieval_log_rank",
    *(f"item_log_count_{d}d" for d in WINDOWS_DAYS),
    "item_log_count_all",
    *(f"item_log_share_{d}d" for d in WINDOWS_DAYS),
    "log_total_30d",
    "log_total_365d",
    "item_log_age_days",
    "item_seen_before",
    "item_log_days_since_last",
    "item_mean_weight",
    "customer_log_events",
    "customer_mean_weight",
    "category_affinity",
    "price_bucket_gap",
    "history_max_similarity",
    "history_mean_similarity",
    "history_cooccurrence",
)
QUERY_FEATURES: tuple[str, ...] = ("retrieval_score", "retrieval_log_rank")
# Everything that depends on the item and the moment only (not on the customer): what a snapshot holds.
ITEM_FEATURES: tuple[str, ...] = (
    *(f"item_log_count_{d}d" for d in WINDOWS_DAYS),
    "item_log_count_all",
    *(f"item_log_share_{d}d" for d in WINDOWS_DAYS),
    "log_total_30d",
    "log_total_365d",
    "item_log_age_days",
    "item_seen_before",
    "item_log_days_since_last",
    "item_mean_weight",
)
CUSTOMER_FEATURES: tuple[str, ...] = ("customer_log_events", "customer_mean_weight")
TASTE_FEATURES: tuple[str, ...] = (
    "category_affinity",
    "price_bucket_gap",
    "history_max_similarity",
    "history_mean_similarity",
    "history_cooccurrence",
)
assert sorted(DENSE_FEATURES) == sorted(QUERY_FEATURES + ITEM_FEATURES + CUSTOMER_FEATURES + TASTE_FEATURES)


def _first_id(j: Jagged) -> np.ndarray:
    """First id of every row (0 = unknown for empty rows)."""
    out = np.zeros(j.n_rows, dtype=np.int64)
    has = j.lengths > 0
    out[has] = j.values[j.offsets[:-1][has]]
    return out


@dataclass
class RankerInputs:
    """Examples laid out as queries x candidates, flattened row-major (query q owns rows q*K..)."""

    customers: np.ndarray  # (Q,)
    at_ts: np.ndarray  # (Q,)
    candidates: np.ndarray  # (Q, K)
    dense: np.ndarray  # (Q*K, F) float32
    history: Jagged  # (Q rows) the customer's recent items, for the sparse "history" feature

    @property
    def n_examples(self) -> int:
        return self.candidates.size

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, item, dense) for flat example rows."""
        k = self.candidates.shape[1]
        return rows // k, self.candidates.reshape(-1)[rows], self.dense[rows]


def query_columns(retrieval_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The retrieval score and log rank of (Q, K) candidates in retrieval order."""
    q, k = retrieval_scores.shape
    return {
        "retrieval_score": retrieval_scores.reshape(-1),
        "retrieval_log_rank": np.tile(np.log1p(np.arange(k, dtype=np.float64)), q),
    }


def customer_columns(n_events: np.ndarray, weight_sum: np.ndarray, global_mean_weight: float) -> dict[str, np.ndarray]:
    """The customer's activity from their event count and weight sum (one value per row)."""
    n_events = np.asarray(n_events)
    mean = np.where(n_events > 0, np.asarray(weight_sum) / np.maximum(n_events, 1), global_mean_weight)
    return {"customer_log_events": np.log1p(n_events), "customer_mean_weight": mean}


def dense_matrix(cols: dict[str, np.ndarray], names: Sequence[str] = DENSE_FEATURES) -> np.ndarray:
    """The ranker's dense input, columns in the order of `names`: a ranker's own `config.dense_features`, so a
    version trained before a feature existed is served the columns it learned."""
    return np.stack([cols[name] for name in names], axis=1).astype(np.float32)


class ItemActivity:
    """Per-item event indexes that answer "popularity and recency of item i as of t" for any t.

    Built from (item, ts, weight) alone: serving builds it over the tenant's events with products the
    model does not know mapped to an extra id, so they still count in the window totals."""

    def __init__(self, item: np.ndarray, ts: np.ndarray, weight: np.ndarray, n_items: int) -> None:
        item = np.asarray(item, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        self.n_items = n_items
        self.max_window = max(WINDOWS_DAYS) * DAY
        self.lo = (int(ts.min()) if len(ts) else 0) - self.max_window - 2
        self.hi = (int(ts.max()) if len(ts) else 0) + 2
        self.span = self.hi - self.lo + 1
        order = np.lexsort((ts, item))
        self.item_keys = item[order] * self.span + (ts[order] - self.lo)
        self.item_sorted_ts = ts[order]
        self.item_weight_cum = np.concatenate([[0.0], np.cumsum(weight[order], dtype=np.float64)])
        counts = np.bincount(item, minlength=n_items)
        self.item_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.all_ts = np.sort(ts)
        self.global_mean_weight = float(weight.mean()) if len(weight) else 1.0

    @staticmethod
    def of(events: Interactions) -> ItemActivity:
        return ItemActivity(events.item, events.ts, events.weight, events.n_items)

    def clip(self, t: np.ndarray) -> np.ndarray:
        return np.clip(t, self.lo, self.hi)

    def events_before(self, item: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Global sorted position of the first event of `item` at or after t."""
        return np.searchsorted(self.item_keys, item * self.span + (self.clip(t) - self.lo))

    def columns(self, item: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """ITEM_FEATURES of each (item, t) row, from the events strictly before t."""
        item = np.asarray(item, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        cols: dict[str, np.ndarray] = {}
        end = self.events_before(item, t)
        start = self.item_start[item]
        n_before = end - start
        totals_end = np.searchsorted(self.all_ts, self.clip(t))
        for days in WINDOWS_DAYS:
            begin = self.events_before(item, t - days * DAY)
            c = (end - begin).astype(np.float64)
            total = totals_end - np.searchsorted(self.all_ts, self.clip(t - days * DAY))
            cols[f"item_log_count_{days}d"] = np.log1p(c)
            cols[f"item_log_share_{days}d"] = np.log((c + 1.0) / (total + 1.0))
            if days in (30, 365):
                cols[f"log_total_{days}d"] = np.log1p(total)
        cols["item_log_count_all"] = np.log1p(n_before)
        seen = n_before > 0
        if len(self.item_sorted_ts):
            first_ts = self.item_sorted_ts[np.minimum(start, len(self.item_sorted_ts) - 1)]
            last_ts = self.item_sorted_ts[np.maximum(end - 1, 0)]
        else:
            first_ts = last_ts = t
        cols["item_log_age_days"] = np.where(seen, np.log1p(np.maximum(t - first_ts, 0) / DAY), 0.0)
        cols["item_seen_before"] = seen.astype(np.float64)
        never = np.log1p(self.max_window * 10 / DAY)
        cols["item_log_days_since_last"] = np.where(seen, np.log1p(np.maximum(t - last_ts, 0) / DAY), never)
        w_sum = self.item_weight_cum[end] - self.item_weight_cum[start]
        cols["item_mean_weight"] = np.where(seen, w_sum / np.maximum(n_before, 1), self.global_mean_weight)
        return cols


@dataclass(frozen=True)
class ItemSnapshot:
    """ITEM_FEATURES of every item as of one moment: what serving gathers rows from per request."""

    columns: np.ndarray  # (n_items, len(ITEM_FEATURES)) float32
    as_of: int  # unix seconds; built from the events strictly before it
    global_mean_weight: float  # customer_mean_weight of a customer without events
    n_events: int

    @property
    def n_items(self) -> int:
        return int(self.columns.shape[0])

    def item_columns(self, items: np.ndarray) -> dict[str, np.ndarray]:
        rows = self.columns[np.asarray(items, dtype=np.int64)]
        return {name: rows[:, j] for j, name in enumerate(ITEM_FEATURES)}


def item_snapshot(
    item: np.ndarray, ts: np.ndarray, weight: np.ndarray, n_items: int, as_of: int | None = None
) -> ItemSnapshot:
    """ITEM_FEATURES of items 0..n_items-1 as of `as_of` (default: just after the newest event).

    `item` may hold -1 for events of products outside 0..n_items-1 (newer than the model): they count
    in the window totals and the global mean weight, as they would in a FeatureContext over the same
    events. Events at or after `as_of` are ignored (a point-in-time snapshot)."""
    item = np.asarray(item, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float32)
    if as_of is None:
        as_of = int(ts.max()) + 1 if len(ts) else 0
    keep = ts < as_of
    item, ts, weight = np.where(item[keep] >= 0, item[keep], n_items), ts[keep], weight[keep]
    activity = ItemActivity(item, ts, weight, n_items + 1)
    cols = activity.columns(np.arange(n_items), np.full(n_items, as_of, dtype=np.int64))
    matrix = np.stack([cols[name] for name in ITEM_FEATURES], axis=1).astype(np.float32)
    return ItemSnapshot(np.ascontiguousarray(matrix), int(as_of), activity.global_mean_weight, len(ts))


class CatalogFeatures:
    """The catalog side of the taste features: category mix, price bucket and item embeddings.

    `items` has one row per item (today's catalog: serving) or one row per attribute version
    (`ItemVersions.features`: training as of each example's time); `taste` then reads the rows it is given
    for the category mix and price level. The embeddings are always per item id."""

    def __init__(
        self,
        items: ItemFeatures,
        item_embeddings: np.ndarray | None = None,
        *,
        item_rows: Callable[[np.ndarray], np.ndarray] | None = None,
        neighbours: ItemNeighbours | None = None,
    ) -> None:
        """`item_rows` (serving) reads the embeddings of the rows one customer's features need, so a table
        served from row shards under a memory budget is never indexed whole; the batched path (training)
        needs `item_embeddings`, the whole table. `neighbours`: the item co-occurrence table (by item id,
        like the embeddings); without it `history_cooccurrence` is 0."""
        self.items = items
        self.neighbours = neighbours
        cat = items.category
        rows = np.repeat(np.arange(cat.n_rows), cat.lengths)
        norm = 1.0 / np.repeat(np.maximum(cat.lengths, 1), cat.lengths)
        self.category = sp.csr_matrix((norm, (rows, cat.values)), shape=(cat.n_rows, items.n_categories))
        self.price_bucket = _first_id(items.price_bucket)
        self.item_embeddings = None if item_embeddings is None else torch.from_numpy(item_embeddings)
        if item_rows is None and item_embeddings is not None:
            item_rows = item_embeddings.__getitem__
        self.item_rows = item_rows

    def taste(
        self,
        history: History,
        candidates: np.ndarray,
        candidate_rows: np.ndarray | None = None,
        history_rows: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """How a candidate fits what the customer did recently: category mix, price level, embedding
        similarity to the last few items, and co-occurrence with the history.

        `candidate_rows` (shaped like `candidates`) and `history_rows` (like `history.items.values`) are the
        catalog rows to read the attributes from (attribute versions as of the example's time); by default
        the row of an item is its id."""
        q, k = candidates.shape
        item = (candidates if candidate_rows is None else np.asarray(candidate_rows, dtype=np.int64)).reshape(-1)
        hist_rows = history.items.values if history_rows is None else np.asarray(history_rows, dtype=np.int64)
        rows = np.repeat(np.arange(q), history.items.lengths)
        if q == 1:  # serving: one customer, whose profile is a dense vector over the categories
            affinity = self._one_affinity(hist_rows, np.asarray(history.weights, dtype=np.float64), item)
        else:
            h = sp.csr_matrix((history.weights, (rows, hist_rows)), shape=(q, self.items.n_items))
            profile = (h @ self.category).tocsr()
            affinity = np.asarray(
                profile[np.repeat(np.arange(q), k)].multiply(self.category[item]).sum(axis=1)
            ).ravel()

        bucket = self.price_bucket[hist_rows].astype(np.float64)
        known = (bucket > 0).astype(np.float64)
        wk = history.weights * known
        num = np.bincount(rows, weights=wk * bucket, minlength=q)
        den = np.bincount(rows, weights=wk, minlength=q)
        mean_bucket = np.repeat(np.where(den > 0, num / np.maximum(den, 1e-12), 0.0), k)
        cand_bucket = self.price_bucket[item].astype(np.float64)
        gap = np.where((mean_bucket > 0) & (cand_bucket > 0), np.abs(cand_bucket - mean_bucket), 0.0)

        out = {"category_affinity": affinity, "price_bucket_gap": gap}
        out.update(self._one_similarity(history, candidates[0]) if q == 1 else self._similarity(history, candidates))
        if self.neighbours is None:
            out["history_cooccurrence"] = np.zeros(q * k)
        elif q == 1:
            out["history_cooccurrence"] = self.neighbours.score(history.items.values, history.weights, candidates[0])
        else:
            out["history_cooccurrence"] = self.neighbours.score_batch(history, candidates)
        return out

    # Serving asks for one customer per request. scipy's row selection and a dozen small torch ops cost
    # more than the arithmetic there, so one query reads the CSR arrays and the embeddings with numpy;
    # the results equal the batched path's (tests/training/test_training_features.py compares them).

    def _category_entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `rows` of each category entry, the entry's index into the CSR arrays)."""
        indptr = self.category.indptr
        starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
        owner = np.repeat(np.arange(len(rows)), lengths)
        return owner, starts[owner] + np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    def _one_affinity(self, hist_rows: np.ndarray, weights: np.ndarray, item: np.ndarray) -> np.ndarray:
        data, indices = self.category.data, self.category.indices
        owner, at = self._category_entries(hist_rows)
        profile = np.bincount(indices[at], weights=weights[owner] * data[at], minlength=self.category.shape[1])
        owner, at = self._category_entries(item)
        return np.bincount(owner, weights=data[at] * profile[indices[at]], minlength=len(item))

    def _one_similarity(self, history: History, candidates: np.ndarray) -> dict[str, np.ndarray]:
        k = len(candidates)
        last = history.items.values[-SIMILARITY_HISTORY:]
        if self.item_rows is None or len(last) == 0:
            zeros = np.zeros(k)
            return {"history_max_similarity": zeros, "history_mean_similarity": zeros}
        sims = self.item_rows(candidates) @ self.item_rows(last).T
        return {"history_max_similarity": sims.max(axis=1).astype(np.float64),
                "history_mean_similarity": (sims.sum(axis=1) / len(last)).astype(np.float64)}

    def _similarity(self, history: History, candidates: np.ndarray) -> dict[str, np.ndarray]:
        q, k = candidates.shape
        if self.item_embeddings is None:
            zeros = np.zeros(q * k)
            return {"history_max_similarity": zeros, "history_mean_similarity": zeros}
        m = SIMILARITY_HISTORY
        lengths = history.items.lengths
        ends = history.items.offsets[1:]
        # Last m items of each history, right-aligned into a (Q, m) grid with a validity mask.
        slot = np.arange(m)[None, :] - m + np.minimum(lengths, m)[:, None]
        valid = slot >= 0
        pos = np.where(valid, ends[:, None] - np.minimum(lengths, m)[:, None] + slot, 0)
        last = history.items.values[pos] if len(history.items.values) else np.zeros((q, m), np.int64)
        emb = self.item_embeddings
        sims = torch.einsum("qkd,qmd->qkm", emb[torch.from_numpy(candidates)], emb[torch.from_numpy(last)])
        mask = torch.from_numpy(valid)[:, None, :]
        n = mask.sum(-1).clamp(min=1)
        max_sim = sims.masked_fill(~mask, -1.0).amax(-1).masked_fill(n.eq(0) | ~mask.any(-1), 0.0)
        mean_sim = sims.masked_fill(~mask, 0.0).sum(-1) / n
        return {
            "history_max_similarity": max_sim.reshape(-1).numpy().astype(np.float64),
            "history_mean_similarity": mean_sim.reshape(-1).numpy().astype(np.float64),
        }


class FeatureContext:
    """Indexes over a set of events (and the catalog) that answer point-in-time questions fast.

    With `item_versions` (the catalog's attribute history, same item indices and vocabularies as `items`)
    the taste features read every candidate's and history item's attributes as of the example's time,
    as the sparse features do (`ranker_kjt_at`); without it, today's catalog `items`."""

    def __init__(
        self,
        events: Interactions,
        items: ItemFeatures,
        item_embeddings: np.ndarray | None = None,
        history_len: int = 50,
        item_versions: ItemVersions | None = None,
        neighbours: ItemNeighbours | None = None,
    ) -> None:
        """`item_embeddings` and `neighbours` (the co-occurrence table) are the model's; the table is built from
        `events` when not given (the events the retrieval model learned, in training and offline)."""
        if item_versions is not None and item_versions.n_items != items.n_items:
            raise ValueError(f"item_versions covers {item_versions.n_items} items, the catalog {items.n_items}")
        self.events = events
        self.items = items
        self.item_versions = item_versions
        self.history_len = history_len
        self.hist = HistoryIndex(events)
        self.activity = ItemActivity.of(events)
        if neighbours is None:
            neighbours = item_neighbours(events, items.n_items)
        self.catalog = CatalogFeatures(items if item_versions is None else item_versions.features, item_embeddings,
                                       neighbours=neighbours)
        self.customer_keys = self.hist.customer * self.activity.span + (self.hist.ts - self.activity.lo)
        self.customer_weight_cum = np.concatenate([[0.0], np.cumsum(self.hist.weight, dtype=np.float64)])

    @property
    def global_mean_weight(self) -> float:
        return self.activity.global_mean_weight

    # -- point-in-time lookups ------------------------------------------------------------------

    def item_events_before(self, item: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Global sorted position of the first event of `item` at or after t."""
        return self.activity.events_before(item, t)

    def customer_events_before(self, customers: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Sorted history position just past each customer's last event strictly before t."""
        a = self.activity
        return np.searchsorted(self.customer_keys, customers * a.span + (a.clip(t) - a.lo))

    def customer_history(self, customers: np.ndarray, at_ts: np.ndarray, recency_decay: float) -> History:
        pos = self.customer_events_before(customers, at_ts)
        return self.hist.before(pos, customers, self.history_len, recency_decay)

    def customer_activity(self, customers: np.ndarray, at_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(event count, weight sum) of each customer's events strictly before at_ts."""
        cpos = self.customer_events_before(customers, at_ts)
        cstart = self.hist.start[customers]
        return cpos - cstart, self.customer_weight_cum[cpos] - self.customer_weight_cum[cstart]

    # -- the feature matrix -----------------------------------------------------------------------

    def ranker_inputs(
        self,
        customers: np.ndarray,
        at_ts: np.ndarray,
        candidates: np.ndarray,
        retrieval_scores: np.ndarray,
        recency_decay: float = 0.9,
    ) -> RankerInputs:
        customers = np.asarray(customers, dtype=np.int64)
        at_ts = np.asarray(at_ts, dtype=np.int64)
        q, k = candidates.shape
        cols = query_columns(np.asarray(retrieval_scores).reshape(q, k))
        cols.update(self.activity.columns(candidates.reshape(-1), np.repeat(at_ts, k)))
        n_c, w_c = self.customer_activity(customers, at_ts)
        cols.update({name: np.repeat(v, k) for name, v in customer_columns(n_c, w_c, self.global_mean_weight).items()})
        history = self.customer_history(customers, at_ts, recency_decay)
        cand_rows = hist_rows = None
        if self.item_versions is not None:
            # As of t = the version valid at t - 1, as `ranker_kjt_at` reads the sparse attributes.
            cand_rows = self.item_versions.rows_at(candidates.reshape(-1), np.repeat(at_ts, k) - 1).reshape(q, k)
            hist_rows = self.item_versions.rows_at(history.items.values, np.repeat(at_ts, history.items.lengths) - 1)
        cols.update(self.catalog.taste(history, candidates, cand_rows, hist_rows))
        return RankerInputs(customers, at_ts, candidates, dense_matrix(cols), history.items)


def ranker_kjt(
    items: ItemFeatures,
    candidate: np.ndarray,
    history: Jagged,
    device: torch.device | None = None,
    keys: tuple[str, ...] = RANKER_KEYS,
    attribute_rows: np.ndarray | None = None,
) -> KeyedJaggedTensor:
    """Sparse ranker input for one candidate per row and that row's history, restricted to `keys`
    (a subset of RANKER_KEYS, in the ranker config's order). The attributes come from row
    `attribute_rows` of `items` (attribute versions: `ranker_kjt_at`), by default the
    candidate's own row; the id feature is always the candidate."""
    return build_kjt(keys, ranker_parts(items, candidate, history, keys, attribute_rows), None, device)


def ranker_kjt_at(
    versions: ItemVersions,
    candidate: np.ndarray,
    at_ts: np.ndarray,
    history: Jagged | History,
    device: torch.device | None = None,
    keys: tuple[str, ...] = RANKER_KEYS,
) -> KeyedJaggedTensor:
    """`ranker_kjt` with the candidate's attributes as of `at_ts` (one time per row).

    "As of t" means what was known strictly before t, as for every event-based feature: the version
    valid at t - 1 (an example's time is just after its last event, so nothing read is younger than
    that event, and no label is older than it).

    The feature definitions stay in `ranker_kjt`: it reads the attributes from the version rows and keeps
    the item id as the id feature. `FeatureContext(item_versions=...)` reads the dense taste features'
    attributes with the same convention.
    """
    candidate = np.asarray(candidate, dtype=np.int64)
    rows = versions.rows_at(candidate, np.asarray(at_ts, dtype=np.int64) - 1)
    hist = history.items if isinstance(history, History) else history
    return ranker_kjt(versions.features, candidate, hist, device, keys, attribute_rows=rows)


def ranker_parts(
    items: ItemFeatures,
    candidate: np.ndarray,
    history: Jagged,
    keys: tuple[str, ...] = RANKER_KEYS,
    attribute_rows: np.ndarray | None = None,
) -> list[Jagged]:
    """ranker_kjt's per-key bags, in `keys` order (serving passes one history row, shared by every
    candidate: serving/forward.py)."""
    candidate = np.asarray(candidate, dtype=np.int64)
    rows = candidate if attribute_rows is None else np.asarray(attribute_rows, dtype=np.int64)
    make = {
        "item_id": lambda: Jagged.from_single(candidate),
        "history": lambda: history,
        "category": lambda: items.category.take(rows),
        "brand": lambda: items.brand.take(rows),
        "price_bucket": lambda: items.price_bucket.take(rows),
    }
    return [make[k]() for k in keys]
