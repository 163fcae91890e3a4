"""Point-in-time correctness of the ranker's training rows: item attributes as of each example's time
(the catalog's version history), and no event, feature value or attribute version younger than the label.

The leakage test replays the timeline in plain Python (one example at a time, from the raw change log and
event list) and compares with what the vectorised training path produced."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from recs.ingest.catalog import upsert_products
from recs.models import Product
from tenants.context import tenant_context
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory
from tests.training.conftest import make_tenant
from training.cooccurrence import item_neighbours
from training.data import Interactions, ItemFeatures, Jagged, temporal_split
from training.datasets import item_features, load_tenant_dataset
from training.features import DENSE_FEATURES, FeatureContext, ranker_kjt_at
from training.inference import TrainedPipeline, candidate_inputs, recommend
from training.item_versions import ALWAYS, T_MAX, ItemVersions
from training.trainers.ranker import sparse_inputs, train_ranker
from training.trainers.two_tower import train_two_tower

SMALL = {"dim": 16, "hidden": 32, "epochs": 2, "batch_size": 64, "lr": 1e-2, "history_len": 10}
ATTRS = ("category", "brand", "price_bucket")
KEYS = ("item_id", "history", "category", "brand", "price_bucket")


def single_valued(category, brand, price) -> ItemFeatures:
    n = len(price)
    return ItemFeatures(
        category=Jagged.from_single(category), brand=Jagged.from_single(brand),
        price_bucket=Jagged.from_single(price), title_tokens=Jagged.from_lists([[1]] * n),
        n_categories=8, n_brands=8, n_price_buckets=8, n_title_tokens=2,
    )  # fmt: skip


def bucket(versions: ItemVersions, rows: np.ndarray) -> list[int]:
    return versions.features.price_bucket.take(np.asarray(rows)).values.tolist()


# --- the version index ----------------------------------------------------------------------------------


def two_items(backfill_first: bool = True) -> ItemVersions:
    # Item 0: bucket 1 from t=100, bucket 2 from t=200. Item 1: bucket 3, no recorded history (always valid).
    # Given out of order on purpose: `build` sorts.
    return ItemVersions.build(
        np.array([0, 1, 0]), np.array([200, ALWAYS, 100]), single_valued([1, 1, 1], [1, 1, 1], [2, 3, 1]), 2,
        backfill_first=backfill_first,
    )


def test_rows_at_picks_the_version_valid_at_each_time():
    v = two_items()
    rows = v.rows_at(np.array([0, 0, 0, 0, 0, 1, 1]), np.array([99, 100, 199, 200, 10**10, -(10**12), 10**10]))
    # Before item 0's first version its first version stands in (the default, see the module doc).
    assert bucket(v, rows) == [1, 1, 1, 2, 2, 3, 3]
    assert v.valid_to().tolist() == [200, T_MAX, T_MAX]
    assert bucket(v, v.latest_rows) == [2, 3]
    assert v.latest_features().n_items == 2


def test_strict_mode_reads_nothing_before_the_first_version():
    v = two_items(backfill_first=False)
    rows = v.rows_at(np.array([0, 0, 1]), np.array([99, 100, 5]))
    assert rows[0] == v.unknown_row and bucket(v, rows) == [0, 1, 3]


def test_versions_are_validated():
    with pytest.raises(ValueError, match="at least one version"):
        ItemVersions.build(np.array([0]), np.array([0]), single_valued([1], [1], [1]), 2)


def test_an_example_before_a_price_change_sees_the_old_bucket_and_one_after_sees_the_new():
    v = two_items()
    history = Jagged.from_lists([[1], [1], [1], [1]])
    # As of t = what was known strictly before t: at 200 exactly the change is not known yet.
    kjt = ranker_kjt_at(v, np.array([0, 0, 0, 1]), np.array([150, 200, 201, 201]), history, keys=KEYS)
    assert kjt["price_bucket"].values().tolist() == [1, 1, 2, 3]
    assert kjt["item_id"].values().tolist() == [0, 0, 0, 1]  # the id is the item, not its version row
    assert kjt["history"].values().tolist() == [1, 1, 1, 1]


# --- the leakage replay -------------------------------------------------------------------------------


def random_history(items: ItemFeatures, lo: int, hi: int, example_times: np.ndarray, rng) -> tuple[list, ItemVersions]:
    """0-3 attribute changes per item at random times in [lo, hi), some exactly at (and one second
    before) an example's time; half the items have no version before their first change."""
    log: list[list[tuple[int, int, int, int]]] = []
    item, valid_from, cat, brand, price = [], [], [], [], []
    for i in range(items.n_items):
        times = sorted(rng.integers(lo, hi, rng.integers(0, 4)).tolist())
        if rng.random() < 0.3:
            t = int(rng.choice(example_times))
            times = sorted([*times, t - int(rng.integers(0, 2))])
        starts = ([ALWAYS] if (rng.random() < 0.5 or not times) else []) + times
        entries = [(s, int(rng.integers(1, 4)), int(rng.integers(0, 5)), int(rng.integers(1, 5))) for s in starts]
        log.append(entries)
        for s, c, b, p in entries:
            item.append(i)
            valid_from.append(s)
            cat.append(c)
            brand.append(b)
            price.append(p)
    features = ItemFeatures(
        Jagged.from_single(cat), Jagged.from_single(brand), Jagged.from_single(price),
        Jagged.from_lists([[1]] * len(cat)), 4, 5, 5, 2,
    )  # fmt: skip
    return log, ItemVersions.build(np.array(item), np.array(valid_from), features, items.n_items, backfill_first=False)


@pytest.fixture(scope="module")
def stacked():
    """The ranker's training rows exactly as train_ranker builds them (candidate_inputs on `history`)."""
    interactions, items = make_tenant(n_customers=60, events_per_customer=18, seed=3)
    history, future = temporal_split(interactions, 0.3)
    retrieval = train_two_tower(history, items, **SMALL)
    ctx = FeatureContext(history, items, retrieval.item_embeddings, retrieval.history_len)
    has = (np.bincount(history.customer, minlength=history.n_customers) > 0) & (
        np.bincount(future.customer, minlength=future.n_customers) > 0
    )
    inputs = candidate_inputs(retrieval, ctx, np.flatnonzero(has), 20)
    return interactions, items, history, future, retrieval, inputs


def test_no_training_row_reads_anything_younger_than_its_label(stacked):
    interactions, items, history, future, retrieval, inputs = stacked
    rng = np.random.default_rng(0)
    log, versions = random_history(items, int(interactions.ts.min()), int(interactions.ts.max()), inputs.at_ts, rng)
    q_count, k = inputs.candidates.shape
    kjt = sparse_inputs(inputs, np.arange(q_count * k), items, versions, KEYS)
    read = {key: kjt[key].values().numpy() for key in ATTRS}
    hist_rows = kjt["history"]
    hist_offsets = np.concatenate([[0], np.cumsum(hist_rows.lengths().numpy())])
    hist_values = hist_rows.values().numpy()
    assert all(len(read[key]) == q_count * k for key in ATTRS)  # one id per example and attribute

    checked_changes = 0
    for q in range(q_count):
        c, t = int(inputs.customers[q]), int(inputs.at_ts[q])
        label_time = int(future.ts[future.customer == c].min())  # every label of this row is at or after it
        assert t - 1 <= label_time
        # Events: the history the row reads is the customer's last events strictly before t.
        mine = np.flatnonzero((history.customer == c) & (history.ts < t))
        mine = mine[np.lexsort((mine, history.ts[mine]))][-retrieval.history_len :]
        assert history.ts[mine].max() <= label_time
        for r in range(q * k, (q + 1) * k):
            assert hist_values[hist_offsets[r] : hist_offsets[r + 1]].tolist() == history.item[mine].tolist()
            # Attributes: replay the item's change log up to (not including) t.
            item = int(inputs.candidates[q, r - q * k])
            known = [entry for entry in log[item] if entry[0] < t]
            start, *expected = known[-1] if known else (None, 0, 0, 0)
            assert [int(read[key][r]) for key in ATTRS] == expected, (q, item, t, log[item])
            assert start is None or start <= label_time
            checked_changes += any(s >= t for s, *_ in log[item])
    assert checked_changes > 50  # many rows had a change after their time that they must not see


def test_dense_features_replay_from_the_events_before_the_example_only(stacked):
    _, items, history, _, retrieval, inputs = stacked
    k = inputs.candidates.shape[1]
    score = DENSE_FEATURES.index("retrieval_score")
    table = item_neighbours(history, items.n_items)
    for q in np.random.default_rng(1).choice(len(inputs.customers), 8, replace=False):
        t = int(inputs.at_ts[q])
        past = history.take(np.flatnonzero(history.ts < t))  # the world as it was at t
        # The embeddings and the co-occurrence table are the model's (learned from `history`), not replayed.
        ctx = FeatureContext(past, items, retrieval.item_embeddings, retrieval.history_len, neighbours=table)
        rows = slice(q * k, (q + 1) * k)
        replay = ctx.ranker_inputs(
            inputs.customers[q : q + 1], inputs.at_ts[q : q + 1], inputs.candidates[q : q + 1],
            inputs.dense[rows, score][None, :], retrieval.recency_decay,
        )  # fmt: skip
        np.testing.assert_allclose(replay.dense, inputs.dense[rows], rtol=1e-5, atol=1e-6)


def test_the_ranker_trains_on_the_history_vocabulary_and_evaluates_as_of_the_query(stacked):
    interactions, items, history, future, retrieval, _ = stacked
    _, versions = random_history(items, int(interactions.ts.min()), int(interactions.ts.max()),
                                 interactions.ts, np.random.default_rng(2))
    ranker = train_ranker(history, future, items, retrieval, item_versions=versions, num_candidates=20,
                          epochs=1, batch_size=256)
    assert (ranker.config.n_categories, ranker.config.n_brands) == (4, 5)
    assert 0 < ranker.metrics["positive_rate"] < 1
    # Offline evaluation reads the versions as of each query's time; a catalog without history is today's.
    pipeline = TrainedPipeline(retrieval, ranker, 20)
    customers = np.arange(10)
    same = ItemVersions.single(versions.latest_features())
    now = recommend(pipeline, history, versions.latest_features(), customers, k=5)
    assert all(np.array_equal(a, b) for a, b in zip(
        now, recommend(pipeline, history, versions.latest_features(), customers, k=5, item_versions=same), strict=True
    ))
    then = recommend(pipeline, history, versions.latest_features(), customers, k=5, item_versions=versions)
    assert then[0].shape == (10, 5)


def test_dense_attribute_features_read_the_version_as_of_the_example():
    # Customer 0 bought item 0 (bucket 2) at t=100; item 1 cost bucket 2 until t=500, bucket 4 since.
    versions = ItemVersions.build(
        np.array([0, 1, 1]), np.array([ALWAYS, ALWAYS, 500]), single_valued([1, 1, 1], [1, 1, 1], [2, 2, 4]), 2
    )
    events = Interactions(np.array([0]), np.array([0]), np.array([100]), np.ones(1), 1, 2)
    ctx = FeatureContext(events, versions.latest_features(), None, 10, item_versions=versions)
    gap = DENSE_FEATURES.index("price_bucket_gap")
    inputs = ctx.ranker_inputs(np.array([0, 0, 0]), np.array([200, 500, 501]), np.ones((3, 1), np.int64),
                               np.zeros((3, 1)))
    # As of t=200 both were bucket 2; at 500 exactly the change is not known yet; from 501 on it is.
    assert inputs.dense[:, gap].tolist() == [0.0, 0.0, 2.0]
    today = FeatureContext(events, versions.latest_features(), None, 10)  # without history: today's catalog
    assert today.ranker_inputs(np.array([0]), np.array([200]), np.array([[1]]), np.zeros((1, 1))).dense[0, gap] == 2.0


def test_dense_attribute_features_of_history_items_are_read_as_of_the_example():
    # The customer's history item changes category: the affinity to a candidate follows the version as of t.
    versions = ItemVersions.build(
        np.array([0, 0, 1]), np.array([ALWAYS, 300, ALWAYS]), single_valued([1, 2, 1], [1, 1, 1], [1, 1, 1]), 2
    )
    events = Interactions(np.array([0]), np.array([0]), np.array([100]), np.ones(1), 1, 2)
    ctx = FeatureContext(events, versions.latest_features(), None, 10, item_versions=versions)
    inputs = ctx.ranker_inputs(np.array([0, 0]), np.array([200, 400]), np.ones((2, 1), np.int64), np.zeros((2, 1)))
    affinity = inputs.dense[:, DENSE_FEATURES.index("category_affinity")]
    assert affinity[0] > 0 and affinity[1] == 0.0


def test_dense_features_with_versions_equal_todays_catalog_once_every_version_is_known(stacked):
    """What serving computes from today's catalog is what training computes from the versions as of a
    moment after every change (the latest version of each item), and a catalog without history changes
    nothing."""
    interactions, items, history, _, retrieval, inputs = stacked
    _, versions = random_history(items, int(interactions.ts.min()), int(interactions.ts.max()),
                                 inputs.at_ts, np.random.default_rng(4))
    latest = versions.latest_features()
    q = len(inputs.customers)
    at = np.full(q, int(versions.valid_from.max()) + 1)
    scores = np.zeros(inputs.candidates.shape)
    args = (inputs.customers, at, inputs.candidates, scores, retrieval.recency_decay)
    emb, h = retrieval.item_embeddings, retrieval.history_len
    now = FeatureContext(history, latest, emb, h).ranker_inputs(*args)
    np.testing.assert_array_equal(FeatureContext(history, latest, emb, h, versions).ranker_inputs(*args).dense,
                                  now.dense)
    single = ItemVersions.single(items)
    np.testing.assert_array_equal(FeatureContext(history, items, emb, h, single).ranker_inputs(*args).dense,
                                  FeatureContext(history, items, emb, h).ranker_inputs(*args).dense)
    # Before the changes the taste features differ (the test above is not one of constants).
    past = (inputs.customers, inputs.at_ts, inputs.candidates, scores, retrieval.recency_decay)
    taste = [DENSE_FEATURES.index(n) for n in ("category_affinity", "price_bucket_gap")]
    assert not np.array_equal(FeatureContext(history, latest, emb, h, versions).ranker_inputs(*past).dense[:, taste],
                              FeatureContext(history, latest, emb, h).ranker_inputs(*past).dense[:, taste])


# --- the database path --------------------------------------------------------------------------------

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def days(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


@pytest.mark.django_db
def test_the_training_dataset_joins_the_catalog_history(all_tenants):
    shop = TenantFactory()
    upsert_products(shop.pk, [{"external_id": "cup", "title": "Blue cup", "price": Decimal("3.00"),
                               "category_path": ["Toys"], "brand": "Acme", "updated_at": days(0)}])
    upsert_products(shop.pk, [{"external_id": "cup", "price": Decimal("30.00"), "updated_at": days(10)}], partial=True)
    upsert_products(shop.pk, [{"external_id": "cup", "category_path": ["Garden"], "brand": "Zed",
                               "updated_at": days(20)}], partial=True)
    # A category gets an id when at least two products carry it (training.datasets.min_category_items),
    # now or in their history: "Toys" and "Garden" are the cup's and the bowl's.
    upsert_products(shop.pk, [{"external_id": "bowl", "title": "Bowl", "category_path": ["Toys"],
                               "updated_at": days(0)}])
    upsert_products(shop.pk, [{"external_id": "bowl", "category_path": ["Garden"], "updated_at": days(15)}],
                    partial=True)
    plain = ProductFactory(tenant=shop, price="100.00")  # created without recorded history
    customer = CustomerFactory(tenant=shop)
    cup = Product.objects.for_tenant(shop).get(external_id="cup")
    for n, product in ((1, cup), (5, plain), (11, cup), (21, cup)):
        EventFactory(tenant=shop, customer=customer, product=product, ts=days(n))

    with tenant_context(shop.pk):
        ds = load_tenant_dataset(shop.pk)
    i_cup, i_plain = np.searchsorted(ds.product_pks, [cup.pk, plain.pk])
    when = np.array([days(n).timestamp() for n in (1, 11, 21)], dtype=np.int64)
    rows = ds.item_versions.rows_at(np.full(3, i_cup), when)
    hist = ds.item_versions.features
    # Price 3.00 is bucket 2, 30.00 bucket 5: the example before the change sees the old bucket.
    assert hist.price_bucket.take(rows).values.tolist() == [2, 5, 5]
    brands = hist.brand.take(rows).values.tolist()
    assert brands[0] == brands[1] != brands[2]
    cats = [hist.category.take(np.array([r])).values.tolist() for r in rows]
    assert cats[0] == cats[1] != cats[2]
    # The current features are the latest version, with the ids today's catalog alone would get.
    current = item_features(list(Product.objects.for_tenant(shop).order_by("id").values_list(
        "id", "title", "category_path", "brand", "price", "tags")))
    for key in ("category", "brand", "price_bucket", "title_tokens"):
        assert getattr(ds.items, key).values.tolist() == getattr(current, key).values.tolist()
        latest = getattr(ds.item_versions.latest_features(), key)
        assert latest.values.tolist() == getattr(current, key).values.tolist()
    assert ds.items.n_categories == hist.n_categories == current.n_categories + 1  # "Toys" is history only
    # A product without history has one version, valid at every moment.
    assert ds.item_versions.rows_at(np.array([i_plain]), np.array([0])).tolist() == [
        int(ds.item_versions.latest_rows[i_plain])
    ]
