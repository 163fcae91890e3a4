import math

import numpy as np
import torch

from training.data import Interactions
from training.evaluation import (
    SeenIndex,
    calibration,
    evaluate_scores,
    log_loss,
    ranking_metrics,
    relevant_sets,
    roc_auc,
    topk_from_scores,
)


def _events(pairs, n_customers=2, n_items=12):
    c, i = zip(*pairs, strict=True)
    n = len(pairs)
    return Interactions(np.array(c), np.array(i), np.arange(n), np.ones(n), n_customers, n_items)


def test_ndcg_recall_hr_on_a_known_ranking():
    # Customer 0 has relevant {1, 4}; the list hits at ranks 1 and 3.
    rel = SeenIndex(_events([(0, 1), (0, 4)], n_customers=1))
    topk = np.array([[1, 2, 4, 5, 6, 7, 8, 9, 10, 11]])
    m = ranking_metrics(topk, np.array([0]), rel, n_items=12)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert math.isclose(m["ndcg@10"], dcg / idcg)
    assert m["recall@10"] == 1.0
    assert m["hr@10"] == 1.0
    assert math.isclose(m["coverage@10"], 10 / 12)


def test_misses_give_zero_and_average_over_customers():
    rel = SeenIndex(_events([(0, 3), (1, 0)]))
    topk = np.array([[3, 4, 5, 6, 7, 8, 9, 10, 11, 2], list(range(1, 11))])
    m = ranking_metrics(topk, np.array([0, 1]), rel, n_items=12)
    assert math.isclose(m["ndcg@10"], 0.5)
    assert math.isclose(m["hr@10"], 0.5)


def test_seen_items_are_excluded_and_test_minus_train_is_relevant():
    train = _events([(0, 0), (0, 1), (1, 2)])
    test = _events([(0, 1), (0, 5), (1, 3)])  # (0, 1) was seen in train: not relevant
    customers, rel = relevant_sets(train, test)
    assert customers.tolist() == [0, 1]
    assert rel.contains(np.array([0, 0]), np.array([1, 5])).tolist() == [False, True]
    scores = torch.arange(12, 0, -1, dtype=torch.float32)  # item 0 scores highest
    topk, _ = topk_from_scores(lambda c: scores.expand(len(c), -1), customers, 5, exclude=SeenIndex(train))
    assert topk[0].tolist() == [2, 3, 4, 5, 6]
    assert topk[1].tolist() == [0, 1, 3, 4, 5]
    m = evaluate_scores(lambda c: scores.expand(len(c), -1), train, test)
    assert m["hr@10"] == 1.0


def test_auc_logloss_calibration():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert math.isclose(log_loss(y, np.full(4, 0.5)), math.log(2))
    cal = calibration(y, np.full(4, 0.5), bins=2)
    assert math.isclose(cal["mean_prob"], 0.5) and math.isclose(cal["positive_rate"], 0.5)


def test_padding_in_a_served_list_is_never_a_hit_nor_coverage():
    # A served answer shorter than k is padded with -1; customer 1's -1 must not read as customer 0's item 11
    # (1 * 12 - 1), the key just before customer 1's first.
    rel = SeenIndex(_events([(0, 11), (1, 2)]))
    topk = np.array([[11] + [-1] * 9, [-1] * 10])
    m = ranking_metrics(topk, np.array([0, 1]), rel, n_items=12)
    assert m["recall@10"] == 0.5
    assert m["hr@10"] == 0.5
    assert math.isclose(m["coverage@10"], 1 / 12)


def test_cold_item_relevant_sets_keep_only_held_out_cold_items():
    from training.evaluation import cold_item_relevant_sets

    train = _events([(0, 1), (1, 2)])
    test = _events([(0, 5), (0, 6), (1, 2), (1, 7)])
    customers, rel = cold_item_relevant_sets(train, test, np.array([5, 2]))
    # Customer 1's cold item 2 is in its train: not relevant (the protocol), so only customer 0 remains.
    assert customers.tolist() == [0]
    assert rel.contains(np.array([0, 0]), np.array([5, 6])).tolist() == [True, False]
