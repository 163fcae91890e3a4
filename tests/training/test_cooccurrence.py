"""The item co-occurrence table and the ranker's `history_cooccurrence` feature, against their definitions."""

from __future__ import annotations

import numpy as np

from training.cooccurrence import item_neighbours, load_item_neighbours
from training.data import History, Interactions, Jagged
from training.features import DENSE_FEATURES, dense_matrix


def _events(rng: np.random.Generator, n_customers: int = 30, n_items: int = 25, n: int = 400) -> Interactions:
    return Interactions(
        customer=rng.integers(0, n_customers, n), item=rng.integers(0, n_items, n), ts=rng.permutation(n) + 1_000,
        weight=rng.choice([1.0, 3.0, -1.0], n, p=[0.6, 0.3, 0.1]), n_customers=n_customers, n_items=n_items,
    )


def _cosine(events: Interactions) -> np.ndarray:
    """The definition, dense: customers' positive-event item sets, cosine between items, no self-pairs."""
    x = np.zeros((events.n_customers, events.n_items))
    positive = events.weight > 0
    x[events.customer[positive], events.item[positive]] = 1.0
    degree = x.sum(axis=0)
    c = x.T @ x / np.sqrt(np.maximum(np.outer(degree, degree), 1e-12))
    np.fill_diagonal(c, 0.0)
    return c


def test_the_table_is_the_cosine_of_the_items_customer_sets():
    events = _events(np.random.default_rng(0))
    table = item_neighbours(events, events.n_items, top_m=events.n_items)
    np.testing.assert_allclose(table.matrix().toarray(), _cosine(events), rtol=1e-6, atol=1e-7)


def test_each_item_keeps_its_strongest_neighbours():
    events = _events(np.random.default_rng(1))
    full, table = _cosine(events), item_neighbours(events, events.n_items, top_m=3)
    kept = table.matrix().toarray()
    for i in range(events.n_items):
        row = kept[i]
        assert (row > 0).sum() == min(3, (full[i] > 0).sum())
        # Nothing dropped is stronger than what was kept.
        assert full[i][row == 0].max(initial=0.0) <= row[row > 0].min(initial=np.inf) + 1e-7


def test_a_customer_counts_with_their_latest_items_only():
    # One customer: items 0, 1, 2 in time order; with max_history 2 only 1 and 2 (the newest) pair up.
    events = Interactions(customer=np.zeros(3), item=np.array([0, 1, 2]), ts=np.array([1, 2, 3]),
                          weight=np.ones(3), n_customers=1, n_items=3)
    pairs = item_neighbours(events, 3, max_history=2).matrix().toarray()
    np.testing.assert_allclose(pairs, [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert item_neighbours(events, 3).matrix().toarray()[0].tolist() == [0, 1, 1]


def test_one_customers_score_is_the_weighted_mean_and_equals_the_batched_one():
    rng = np.random.default_rng(2)
    events = _events(rng)
    table = item_neighbours(events, events.n_items, top_m=5)
    c = table.matrix().toarray()
    lengths = np.array([4, 0, 7, 1])
    history = History(Jagged(rng.integers(0, events.n_items, lengths.sum()), lengths), rng.random(lengths.sum()))
    candidates = rng.integers(0, events.n_items, (4, 9))
    candidates[0, :2] = candidates[0, 2]  # a repeated candidate gets the same score each time
    batched = table.score_batch(history, candidates).reshape(4, 9)
    start = np.concatenate([[0], np.cumsum(lengths)])
    for q in range(4):
        items, weights = history.items.values[start[q]:start[q + 1]], history.weights[start[q]:start[q + 1]]
        expected = weights @ c[items][:, candidates[q]] / weights.sum() if len(items) else np.zeros(9)
        np.testing.assert_allclose(table.score(items, weights, candidates[q]), expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(batched[q], expected, rtol=1e-6, atol=1e-9)
    assert batched.sum() > 0 and np.all(batched[1] == 0)


def test_the_table_round_trips_memory_mapped_and_older_versions_have_none(tmp_path):
    events = _events(np.random.default_rng(3))
    table = item_neighbours(events, events.n_items)
    assert load_item_neighbours(tmp_path) is None
    table.save(tmp_path)
    loaded = load_item_neighbours(tmp_path)
    assert isinstance(loaded.indices, np.memmap)
    assert (loaded.matrix() != table.matrix()).nnz == 0


def test_a_ranker_is_given_the_columns_it_learned_in_its_order():
    """A version trained before a feature existed is served the columns of its own `dense_features`."""
    cols = {name: np.full(2, float(i)) for i, name in enumerate(DENSE_FEATURES)}
    older = tuple(name for name in DENSE_FEATURES if name != "history_cooccurrence")
    assert dense_matrix(cols).shape == (2, len(DENSE_FEATURES))
    np.testing.assert_array_equal(dense_matrix(cols, older)[0], [DENSE_FEATURES.index(n) for n in older])
