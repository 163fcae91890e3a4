"""The ranker features' pieces that serving reuses: item snapshots equal the FeatureContext's item columns
at the same moment, and the version's catalog and snapshots round-trip through their artifact files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.artifacts import (
    ITEM_FEATURES_FILE,
    load_item_features,
    load_item_snapshot,
    save_item_features,
    save_item_snapshot,
    snapshot_pointer,
)
from training.features import (
    DAY,
    DENSE_FEATURES,
    ITEM_FEATURES,
    SIMILARITY_HISTORY,
    CatalogFeatures,
    FeatureContext,
    customer_columns,
    item_snapshot,
)


def _columns(inputs, names) -> np.ndarray:
    return inputs.dense[:, [DENSE_FEATURES.index(n) for n in names]]


@pytest.mark.parametrize("shift_days", [0, -3, -20, 400])
def test_an_item_snapshot_is_the_feature_context_at_its_moment(tenant, shift_days):
    events, items = tenant
    as_of = int(events.ts.max()) + 1 + shift_days * DAY
    snap = item_snapshot(events.item, events.ts, events.weight, events.n_items, as_of)
    # The context holds the events before the moment, as the served one does (FeatureContext's default
    # for unseen items and customers, the mean weight, is taken over all the events it was built with).
    ctx = FeatureContext(events.take(np.flatnonzero(events.ts < as_of)), items)
    candidates = np.arange(events.n_items)[None, :]
    inputs = ctx.ranker_inputs(np.array([0]), np.array([as_of]), candidates, np.zeros((1, events.n_items)))

    np.testing.assert_array_equal(snap.columns, _columns(inputs, ITEM_FEATURES))
    assert snap.as_of == as_of and snap.n_events == int((events.ts < as_of).sum())
    got = snap.item_columns(np.array([5, 2]))["item_log_count_all"]
    assert got.tolist() == snap.columns[[5, 2], ITEM_FEATURES.index("item_log_count_all")].tolist()


def test_events_of_products_newer_than_the_model_count_in_the_totals(tenant):
    """A snapshot over a catalog that grew: the new products' events are in the window totals and the
    global mean, exactly as in a FeatureContext over all products."""
    events, items = tenant
    n_model = events.n_items - 10  # the last ten products came after the model
    as_of = int(events.ts.max()) + 1
    unknown = np.where(events.item < n_model, events.item, -1)
    snap = item_snapshot(unknown, events.ts, events.weight, n_model, as_of)
    ctx = FeatureContext(events, items)
    inputs = ctx.ranker_inputs(np.array([0]), np.array([as_of]), np.arange(n_model)[None, :], np.zeros((1, n_model)))

    np.testing.assert_array_equal(snap.columns, _columns(inputs, ITEM_FEATURES))
    assert snap.global_mean_weight == ctx.global_mean_weight


def test_customer_columns_match_the_context(tenant):
    events, items = tenant
    ctx = FeatureContext(events, items)
    customers = np.arange(10)
    at = np.full(10, int(np.median(events.ts)))
    n, w = ctx.customer_activity(customers, at)
    cols = customer_columns(n, w, ctx.global_mean_weight)
    inputs = ctx.ranker_inputs(customers, at, np.zeros((10, 1), np.int64), np.zeros((10, 1)))
    for name in ("customer_log_events", "customer_mean_weight"):
        np.testing.assert_array_equal(inputs.dense[:, DENSE_FEATURES.index(name)], cols[name].astype(np.float32))
    empty = customer_columns(np.array([0]), np.array([0.0]), 2.5)
    assert empty["customer_mean_weight"].tolist() == [2.5] and empty["customer_log_events"].tolist() == [0.0]


def test_an_empty_tenant_has_a_snapshot_of_unseen_items():
    snap = item_snapshot(np.zeros(0), np.zeros(0), np.zeros(0), 4, None)
    assert snap.columns.shape == (4, len(ITEM_FEATURES)) and snap.n_events == 0
    assert (snap.columns[:, ITEM_FEATURES.index("item_seen_before")] == 0).all()


def test_item_features_round_trip_and_old_artifacts_have_none(tenant, tmp_path):
    _, items = tenant
    assert load_item_features(tmp_path) is None  # a version saved before the file existed
    save_item_features(tmp_path, items)
    again = load_item_features(tmp_path)
    assert (tmp_path / ITEM_FEATURES_FILE).exists()
    for name in ("category", "brand", "price_bucket", "title_tokens"):
        assert getattr(again, name).values.tolist() == getattr(items, name).values.tolist()
        assert getattr(again, name).lengths.tolist() == getattr(items, name).lengths.tolist()
    assert (again.n_categories, again.n_brands, again.n_price_buckets, again.n_title_tokens) == (
        items.n_categories, items.n_brands, items.n_price_buckets, items.n_title_tokens)


def test_snapshots_are_published_atomically_newest_wins_and_old_files_go(tenant, tmp_path):
    events, _ = tenant
    assert load_item_snapshot(tmp_path) is None
    end = int(events.ts.max()) + 1
    for as_of in (end - 3 * DAY, end - 2 * DAY, end):
        save_item_snapshot(tmp_path, item_snapshot(events.item, events.ts, events.weight, events.n_items, as_of))
    loaded = load_item_snapshot(tmp_path)
    assert loaded.as_of == end and isinstance(loaded.columns, np.memmap)
    expected = item_snapshot(events.item, events.ts, events.weight, events.n_items, end)
    np.testing.assert_array_equal(np.asarray(loaded.columns), expected.columns)
    assert loaded.global_mean_weight == pytest.approx(expected.global_mean_weight)
    assert len(list(snapshot_pointer(tmp_path).parent.glob("items-*.npy"))) == 2
    # A late builder with an older moment does not win.
    save_item_snapshot(tmp_path, item_snapshot(events.item, events.ts, events.weight, events.n_items, end - DAY))
    assert load_item_snapshot(tmp_path).as_of == end


def test_a_snapshot_of_other_columns_is_refused(tenant, tmp_path):
    events, _ = tenant
    save_item_snapshot(tmp_path, item_snapshot(events.item, events.ts, events.weight, events.n_items))
    pointer = snapshot_pointer(tmp_path)
    meta = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**meta, "columns": meta["columns"][:-1]}))
    with pytest.raises(ValueError, match="columns"):
        load_item_snapshot(tmp_path)


def test_ranker_inputs_are_assembled_from_the_shared_pieces(tenant):
    """FeatureContext.ranker_inputs = query + item + customer + taste columns, in DENSE_FEATURES order."""
    events, items = tenant
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(events.n_items, 8)).astype(np.float32)
    ctx = FeatureContext(events, items, emb, history_len=7)
    customers = rng.integers(0, events.n_customers, 6)
    at = rng.integers(int(events.ts.min()), int(events.ts.max()), 6)
    cand = rng.integers(0, events.n_items, (6, 9))
    inputs = ctx.ranker_inputs(customers, at, cand, rng.random((6, 9)), 0.8)
    item_part = ctx.activity.columns(cand.reshape(-1), np.repeat(at, 9))
    np.testing.assert_array_equal(
        _columns(inputs, ITEM_FEATURES), np.stack([item_part[n] for n in ITEM_FEATURES], 1).astype(np.float32)
    )
    taste = ctx.catalog.taste(ctx.customer_history(customers, at, 0.8), cand)
    names = ("category_affinity", "price_bucket_gap", "history_max_similarity", "history_mean_similarity",
             "history_cooccurrence")
    np.testing.assert_array_equal(_columns(inputs, names), np.stack([taste[n] for n in names], 1).astype(np.float32))


def test_the_single_customer_taste_equals_the_batched_one(tenant):
    """Serving computes the taste features of one customer at a time (its own code path); they must be
    what the batched path, which training uses, gives that customer."""
    events, items = tenant
    rng = np.random.default_rng(1)
    ctx = FeatureContext(events, items, rng.normal(size=(events.n_items, 8)).astype(np.float32), history_len=7)
    customers = np.arange(min(events.n_customers, 12))
    at = np.full(len(customers), int(events.ts.max()) + 1)
    at[::3] = int(events.ts.min())  # some customers have no history yet
    cand = rng.integers(0, events.n_items, (len(customers), 15))
    batched = ctx.catalog.taste(ctx.customer_history(customers, at, 0.8), cand)
    for i in range(len(customers)):
        one = ctx.catalog.taste(ctx.customer_history(customers[i:i + 1], at[i:i + 1], 0.8), cand[i:i + 1])
        for name, column in batched.items():
            np.testing.assert_allclose(one[name], column[i * 15:(i + 1) * 15], rtol=1e-6, atol=1e-6, err_msg=name)
    assert np.abs(batched["category_affinity"]).sum() > 0 and np.abs(batched["history_max_similarity"]).sum() > 0
    assert np.abs(batched["history_cooccurrence"]).sum() > 0


def test_one_customer_reads_only_the_embedding_rows_it_needs(tenant):
    """Serving reads item embeddings through its model (`ServedModel.item_rows`: row shards under a memory
    budget), never the whole table: one customer's taste asks for its candidates' and recent items' rows only,
    and equals what the whole table gives."""
    events, items = tenant
    embeddings = np.random.default_rng(2).normal(size=(events.n_items, 8)).astype(np.float32)
    ctx = FeatureContext(events, items, embeddings, history_len=7)
    asked: list[np.ndarray] = []

    def item_rows(rows: np.ndarray) -> np.ndarray:
        asked.append(np.asarray(rows))
        return embeddings[rows]

    served = CatalogFeatures(items, item_rows=item_rows, neighbours=ctx.catalog.neighbours)
    history = ctx.customer_history(np.array([0]), np.array([int(events.ts.max()) + 1]), 0.8)
    candidates = np.array([[3, 1, 4, 1, 5]]) % events.n_items
    whole = ctx.catalog.taste(history, candidates)
    for name, column in served.taste(history, candidates).items():
        np.testing.assert_allclose(column, whole[name], rtol=1e-6, err_msg=name)
    needed = set(candidates[0].tolist()) | set(history.items.values[-SIMILARITY_HISTORY:].tolist())
    assert len(history.items.values) > 0 and set(np.concatenate(asked).tolist()) == needed
