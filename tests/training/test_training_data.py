import numpy as np
import pytest

from training.data import (
    CUSTOMER_KEYS,
    ITEM_KEYS,
    HistoryIndex,
    Interactions,
    Jagged,
    customer_kjt,
    hash_tokens,
    item_kjt,
    make_history,
    ragged_arange,
    temporal_split,
    validation_split,
)


def test_ragged_arange_and_take():
    assert ragged_arange(np.array([5, 0, 10]), np.array([2, 0, 3])).tolist() == [5, 6, 10, 11, 12]
    j = Jagged.from_lists([[1, 2], [], [3], [4, 5, 6]])
    t = j.take(np.array([3, 1, 0]))
    assert t.values.tolist() == [4, 5, 6, 1, 2]
    assert t.lengths.tolist() == [3, 0, 2]


def test_interactions_validate_ranges():
    with pytest.raises(ValueError):
        Interactions(np.array([0, 3]), np.array([0, 1]), np.array([1, 2]), np.ones(2), 3, 2)


def test_temporal_split_protocol(tenant):
    interactions, _ = tenant
    train, test = temporal_split(interactions, 0.2)
    assert len(train) + len(test) == len(interactions)
    for c in range(interactions.n_customers):
        tr = train.ts[train.customer == c]
        te = test.ts[test.customer == c]
        n = len(tr) + len(te)
        assert len(te) >= 1
        assert len(te) == max(1, round(0.2 * n))
        # No test event precedes a train event of the same customer.
        assert te.min() >= tr.max()


def test_temporal_split_ties_and_single_event():
    # Customer 0: three events at the same second; customer 1: a single event.
    inter = Interactions(
        customer=np.array([0, 0, 0, 1]), item=np.array([0, 1, 2, 0]), ts=np.array([5, 5, 5, 9]),
        weight=np.ones(4), n_customers=2, n_items=3,
    )  # fmt: skip
    train, test = temporal_split(inter, 0.2)
    assert test.customer.tolist() == [0]
    assert test.item.tolist() == [2]  # input order breaks the tie: the last row is "latest"
    assert sorted(train.customer.tolist()) == [0, 0, 1]


def test_validation_split_is_carved_from_train(tenant):
    interactions, _ = tenant
    train, _ = temporal_split(interactions)
    inner, val = validation_split(train)
    assert len(inner) + len(val) == len(train)
    assert set(np.unique(val.customer)) == set(np.unique(train.customer))


def test_history_before_excludes_the_target_and_weights_recent_more(tenant):
    interactions, _ = tenant
    idx = HistoryIndex(interactions)
    c = 3
    start, end = idx.start[c], idx.start[c + 1]
    pos = np.array([end - 1])
    h = idx.before(pos, np.array([c]), max_len=4, recency_decay=0.5)
    assert h.items.lengths.tolist() == [4]
    assert h.items.values.tolist() == idx.item[end - 5 : end - 1].tolist()
    assert np.isclose(h.weights.sum(), 1.0)
    first = idx.before(np.array([start]), np.array([c]), 4, 0.5)
    assert first.items.lengths.tolist() == [0]
    equal = make_history([[1, 2, 3]], [[1.0, 1.0, 1.0]], recency_decay=0.5)
    assert equal.weights[2] > equal.weights[1] > equal.weights[0]


def test_history_cut_stops_offsets_earlier_but_never_before_the_customer(tenant):
    interactions, _ = tenant
    idx = HistoryIndex(interactions)
    c = 3
    start, end = idx.start[c], idx.start[c + 1]
    pos = np.array([end - 1, end - 1, start + 1, start])
    cut = idx.cut_before(pos, np.array([0, 3, 5, 2]))
    assert cut.tolist() == [end - 1, end - 4, start, start]
    h = idx.before(cut[1:2], np.array([c]), max_len=10, recency_decay=0.9)
    # The history ends three events before its target: neither the target nor the two before it are in it.
    assert h.items.values.tolist() == idx.item[end - 14 : end - 4].tolist()


def test_kjt_builders(tenant):
    _, items = tenant
    kjt = item_kjt(items, np.array([0, 5, 7]))
    assert kjt.keys() == list(ITEM_KEYS)
    assert kjt.stride() == 3
    assert kjt["category"].lengths().tolist() == [1, 1, 1]
    hist = make_history([[1, 2], [], [3]])
    ckjt = customer_kjt(np.array([0, -1, 2]), hist)
    assert ckjt.keys() == list(CUSTOMER_KEYS)
    assert ckjt["customer_id"].lengths().tolist() == [1, 0, 1]  # -1 = unknown customer
    assert ckjt["history"].lengths().tolist() == [2, 0, 1]
    assert ckjt.weights().shape == ckjt.values().shape


def test_hash_tokens_are_stable_and_in_range():
    a = hash_tokens(["Toy Story", None, "toy  STORY!"], 100)
    assert a.lengths.tolist() == [2, 0, 2]
    assert a.take(np.array([0])).values.tolist() == a.take(np.array([2])).values.tolist()
    assert a.values.min() >= 1 and a.values.max() < 100
