"""Point-in-time ranker features: one implementation for training (as of each example's time) and
serving (as of now), so there is no train/serve skew and no future leakage.

Every feature of an example (customer c, candidate i, time t) is computed from the events the
context was built with that happened strictly before t: item popularity in trailing windows, item
age and recency, the customer's own activity and taste. Nothing at or after t is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from training.data import History, HistoryIndex, Interactions, ItemFeatures, Jagged, build_kjt
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
)


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


class FeatureContext:
    """Indexes over a set of events (and the catalog) that answer point-in-time questions fast."""

    def __init__(
        self,
        events: Interactions,
        items: ItemFeatures,
        item_embeddings: np.ndarray | None = None,
        history_len: int = 50,
    ) -> None:
        self.events = events
        self.items = items
        self.history_len = history_len
        self.hist = HistoryIndex(events)
        self.max_window = max(WINDOWS_DAYS) * DAY
        ts = events.ts
        self.lo = (int(ts.min()) if len(ts) else 0) - self.max_window - 2
        self.hi = (int(ts.max()) if len(ts) else 0) + 2
        self.span = self.hi - self.lo + 1
        order = np.lexsort((ts, events.item))
        self.item_keys = events.item[order] * self.span + (ts[order] - self.lo)
        self.item_sorted_ts = ts[order]
        self.item_weight_cum = np.concatenate([[0.0], np.cumsum(events.weight[order], dtype=np.float64)])
        counts = np.bincount(events.item, minlength=events.n_items)
        self.item_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.all_ts = np.sort(ts)
        self.customer_keys = self.hist.customer * self.span + (self.hist.ts - self.lo)
        self.customer_weight_cum = np.concatenate([[0.0], np.cumsum(self.hist.weight, dtype=np.float64)])
        self.global_mean_weight = float(events.weight.mean()) if len(events) else 1.0
        cat = items.category
        rows = np.repeat(np.arange(cat.n_rows), cat.lengths)
        norm = 1.0 / np.repeat(np.maximum(cat.lengths, 1), cat.lengths)
        self.category = sp.csr_matrix((norm, (rows, cat.values)), shape=(cat.n_rows, items.n_categories))
        self.price_bucket = _first_id(items.price_bucket)
        self.item_embeddings = None if item_embeddings is None else torch.from_numpy(item_embeddings)

    # -- point-in-time lookups ------------------------------------------------------------------

    def _clip(self, t: np.ndarray) -> np.ndarray:
        return np.clip(t, self.lo, self.hi)

    def item_events_before(self, item: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Global sorted position of the first event of `item` at or after t."""
        return np.searchsorted(self.item_keys, item * self.span + (self._clip(t) - self.lo))

    def customer_events_before(self, customers: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Sorted history position just past each customer's last event strictly before t."""
        return np.searchsorted(self.customer_keys, customers * self.span + (self._clip(t) - self.lo))

    def customer_history(self, customers: np.ndarray, at_ts: np.ndarray, recency_decay: float) -> History:
        pos = self.customer_events_before(customers, at_ts)
        return self.hist.before(pos, customers, self.history_len, recency_decay)

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
        item = candidates.reshape(-1).astype(np.int64)
        t = np.repeat(at_ts, k)
        cols: dict[str, np.ndarray] = {
            "retrieval_score": retrieval_scores.reshape(-1),
            "retrieval_log_rank": np.tile(np.log1p(np.arange(k, dtype=np.float64)), q),
        }
        # Item popularity and recency as of t.
        end = self.item_events_before(item, t)
        start = self.item_start[item]
        n_before = end - start
        totals_end = np.searchsorted(self.all_ts, self._clip(at_ts))
        for days in WINDOWS_DAYS:
            begin = self.item_events_before(item, t - days * DAY)
            c = (end - begin).astype(np.float64)
            total = np.repeat(totals_end - np.searchsorted(self.all_ts, self._clip(at_ts - days * DAY)), k)
            cols[f"item_log_count_{days}d"] = np.log1p(c)
            cols[f"item_log_share_{days}d"] = np.log((c + 1.0) / (total + 1.0))
            if days in (30, 365):
                cols[f"log_total_{days}d"] = np.log1p(total)
        cols["item_log_count_all"] = np.log1p(n_before)
        seen = n_before > 0
        first_ts = self.item_sorted_ts[np.minimum(start, len(self.item_sorted_ts) - 1)] if len(item) else t
        last_ts = self.item_sorted_ts[np.maximum(end - 1, 0)] if len(self.item_sorted_ts) else t
        cols["item_log_age_days"] = np.where(seen, np.log1p(np.maximum(t - first_ts, 0) / DAY), 0.0)
        cols["item_seen_before"] = seen.astype(np.float64)
        never = np.log1p(self.max_window * 10 / DAY)
        cols["item_log_days_since_last"] = np.where(seen, np.log1p(np.maximum(t - last_ts, 0) / DAY), never)
        w_sum = self.item_weight_cum[end] - self.item_weight_cum[start]
        cols["item_mean_weight"] = np.where(seen, w_sum / np.maximum(n_before, 1), self.global_mean_weight)

        # The customer as of t.
        cpos = self.customer_events_before(customers, at_ts)
        cstart = self.hist.start[customers]
        n_c = cpos - cstart
        c_mean = np.where(
            n_c > 0,
            (self.customer_weight_cum[cpos] - self.customer_weight_cum[cstart]) / np.maximum(n_c, 1),
            self.global_mean_weight,
        )
        cols["customer_log_events"] = np.repeat(np.log1p(n_c), k)
        cols["customer_mean_weight"] = np.repeat(c_mean, k)

        history = self.hist.before(cpos, customers, self.history_len, recency_decay)
        cols.update(self._taste(history, candidates))
        dense = np.stack([cols[name] for name in DENSE_FEATURES], axis=1).astype(np.float32)
        return RankerInputs(customers, at_ts, candidates, dense, history.items)

    def _taste(self, history: History, candidates: np.ndarray) -> dict[str, np.ndarray]:
        """How a candidate fits what the customer did recently: category mix, price level, and
        embedding similarity to the last few items."""
        q, k = candidates.shape
        item = candidates.reshape(-1)
        rows = np.repeat(np.arange(q), history.items.lengths)
        h = sp.csr_matrix((history.weights, (rows, history.items.values)), shape=(q, self.items.n_items))
        profile = (h @ self.category).tocsr()
        affinity = np.asarray(profile[np.repeat(np.arange(q), k)].multiply(self.category[item]).sum(axis=1)).ravel()

        bucket = self.price_bucket[history.items.values].astype(np.float64)
        known = (bucket > 0).astype(np.float64)
        wk = history.weights * known
        num = np.bincount(rows, weights=wk * bucket, minlength=q)
        den = np.bincount(rows, weights=wk, minlength=q)
        mean_bucket = np.repeat(np.where(den > 0, num / np.maximum(den, 1e-12), 0.0), k)
        cand_bucket = self.price_bucket[item].astype(np.float64)
        gap = np.where((mean_bucket > 0) & (cand_bucket > 0), np.abs(cand_bucket - mean_bucket), 0.0)

        out = {"category_affinity": affinity, "price_bucket_gap": gap}
        out.update(self._similarity(history, candidates))
        return out

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


def ranker_kjt(
    items: ItemFeatures,
    candidate: np.ndarray,
    history: Jagged,
    device: torch.device | None = None,
    keys: tuple[str, ...] = RANKER_KEYS,
) -> KeyedJaggedTensor:
    """Sparse ranker input for one candidate per row and that row's history, restricted to `keys`
    (a subset of RANKER_KEYS, in the ranker config's order)."""
    candidate = np.asarray(candidate, dtype=np.int64)
    make = {
        "item_id": lambda: Jagged.from_single(candidate),
        "history": lambda: history,
        "category": lambda: items.category.take(candidate),
        "brand": lambda: items.brand.take(candidate),
        "price_bucket": lambda: items.price_bucket.take(candidate),
    }
    return build_kjt(keys, [make[k]() for k in keys], None, device)
