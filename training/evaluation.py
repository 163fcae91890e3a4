"""The one offline protocol behind every reported number.

Split: per customer, the last 20% of events by time (at least one) are test, the rest train
(`training.data.temporal_split`). Recommendations exclude items the customer has in train. The
relevant set of a customer is their test items minus their train items (an item seen in train can
never be recommended, so counting it would only lower everyone's recall alike). Metrics are
averaged over every customer with at least one relevant item:

- Recall@K = relevant items in the top K / number of relevant items
- NDCG@10 with binary gains, ideal DCG over min(#relevant, 10) positions
- HitRate@10 = share of customers with at least one relevant item in the top 10
- coverage@10 = distinct items in all top-10 lists / catalog size
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from training.data import Interactions, ragged_arange

ScoreFn = Callable[[np.ndarray], torch.Tensor]


class SeenIndex:
    """Each customer's items in a CSR layout, to mask them out of score matrices quickly."""

    def __init__(self, events: Interactions) -> None:
        keys = np.unique(events.customer * events.n_items + events.item)
        self.n_items = events.n_items
        self.items = keys % events.n_items
        counts = np.bincount(keys // events.n_items, minlength=events.n_customers)
        self.start = np.zeros(events.n_customers + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])
        self.keys = keys

    def rows_cols(self, customers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in `customers`, item) pairs of everything those customers have seen."""
        lengths = self.start[customers + 1] - self.start[customers]
        rows = np.repeat(np.arange(len(customers)), lengths)
        return rows, self.items[ragged_arange(self.start[customers], lengths)]

    def contains(self, customers: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Elementwise: has customers[i] seen items[i]? (broadcasts)."""
        keys = np.asarray(customers, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, max(len(self.keys) - 1, 0))
        return (self.keys[pos] == keys) if len(self.keys) else np.zeros(keys.shape, dtype=bool)


def topk_from_scores(
    score_fn: ScoreFn,
    customers: np.ndarray,
    k: int,
    exclude: SeenIndex | None = None,
    chunk: int = 1024,
    n_items: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and scores per customer; `score_fn(customers_chunk)` returns a
    (len(chunk), n_items) tensor. Seen items are masked to -inf before the top-k. With
    `n_items`, chunks shrink so one score block stays under ~128 MB on large catalogs."""
    customers = np.asarray(customers, dtype=np.int64)
    if n_items:
        chunk = max(1, min(chunk, (32 << 20) // n_items))
    out_items, out_scores = [], []
    for lo in range(0, len(customers), chunk):
        part = customers[lo : lo + chunk]
        scores = score_fn(part).detach().float().clone()
        if exclude is not None:
            rows, cols = exclude.rows_cols(part)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        out_items.append(top.indices.cpu().numpy())
        out_scores.append(top.values.cpu().numpy())
    if not out_items:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(out_items).astype(np.int64), np.concatenate(out_scores).astype(np.float32)


def relevant_sets(train: Interactions, test: Interactions) -> tuple[np.ndarray, SeenIndex]:
    """Customers to evaluate and their relevant (test minus train) items."""
    seen = SeenIndex(train)
    keep = ~seen.contains(test.customer, test.item)
    rel = SeenIndex(test.take(np.flatnonzero(keep)))
    customers = np.flatnonzero(rel.start[1:] - rel.start[:-1] > 0)
    return customers, rel


def ranking_metrics(topk: np.ndarray, customers: np.ndarray, relevant: SeenIndex, n_items: int) -> dict[str, float]:
    """Protocol metrics for ranked lists `topk` (one row per customer, best first). A negative entry is
    padding (a list shorter than the row, or an item the catalog does not know): never a hit, never
    counted in coverage."""
    customers = np.asarray(customers, dtype=np.int64)
    if len(customers) == 0:
        return {"ndcg@10": 0.0, "recall@10": 0.0, "hr@10": 0.0, "recall@100": 0.0, "coverage@10": 0.0}
    topk = np.asarray(topk, dtype=np.int64)
    # Padding is masked rather than looked up: customer * n_items - 1 would be the previous customer's key.
    hits = (relevant.contains(customers[:, None], np.maximum(topk, 0)) & (topk >= 0)).astype(np.float64)
    n_rel = (relevant.start[customers + 1] - relevant.start[customers]).astype(np.float64)
    k10 = min(10, topk.shape[1])
    discounts = 1.0 / np.log2(np.arange(2, k10 + 2))
    dcg = (hits[:, :k10] * discounts).sum(1)
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k10).astype(np.int64) - 1]
    top10 = topk[:, :10]
    return {
        "ndcg@10": float(np.mean(dcg / ideal)),
        "recall@10": float(np.mean(hits[:, :10].sum(1) / n_rel)),
        "hr@10": float(np.mean(hits[:, :10].sum(1) > 0)),
        "recall@100": float(np.mean(hits[:, :100].sum(1) / n_rel)),
        "coverage@10": float(len(np.unique(top10[top10 >= 0])) / n_items),
    }


def cold_item_relevant_sets(
    train: Interactions, test: Interactions, cold_items: np.ndarray
) -> tuple[np.ndarray, SeenIndex]:
    """The protocol's relevant sets (test minus train) narrowed to `cold_items`: customers with at least one
    held-out interaction with a cold item, and those items. Recall@100 over them (`ranking_metrics`) is
    the share of cold items a customer went on to have that their top 100 holds."""
    cold = np.zeros(train.n_items, dtype=bool)
    cold[np.asarray(cold_items, dtype=np.int64)] = True
    return relevant_sets(train, test.take(np.flatnonzero(cold[test.item])))


def evaluate_scores(score_fn: ScoreFn, train: Interactions, test: Interactions, chunk: int = 1024) -> dict[str, float]:
    """Protocol metrics for any model that can score the whole catalog for a batch of customers."""
    customers, rel = relevant_sets(train, test)
    topk, _ = topk_from_scores(score_fn, customers, 100, exclude=SeenIndex(train), chunk=chunk, n_items=train.n_items)
    return ranking_metrics(topk, customers, rel, train.n_items)


def evaluate_topk(topk: np.ndarray, customers: np.ndarray, train: Interactions, test: Interactions) -> dict:
    """Protocol metrics for precomputed lists (rows aligned with `customers`)."""
    eval_customers, rel = relevant_sets(train, test)
    row = np.full(train.n_customers, -1, dtype=np.int64)
    row[np.asarray(customers, dtype=np.int64)] = np.arange(len(customers))
    take = row[eval_customers]
    if (take < 0).any():
        raise ValueError("topk lacks rows for some customers that have test items")
    return ranking_metrics(topk[take], eval_customers, rel, train.n_items)


# ---------------------------------------------------------------------------------------------
# Classification metrics for the ranker.


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average rank within runs of equal scores.
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(s)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Expected calibration error over equal-count bins, plus mean prediction vs observed rate."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    order = np.argsort(p)
    ece = 0.0
    for part in np.array_split(order, bins):
        if len(part):
            ece += len(part) / len(p) * abs(p[part].mean() - y[part].mean())
    return {"ece": float(ece), "mean_prob": float(p.mean()), "positive_rate": float(y.mean())}


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    return {"auc": roc_auc(labels, probs), "log_loss": log_loss(labels, probs), **calibration(labels, probs)}
