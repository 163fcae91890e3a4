"""Ordering: promotion thresholds, boosts and buries, the diversity cap, and the re-ranker hook."""

from __future__ import annotations

import numpy as np
import pytest

from recs.rules import parse_conditions
from serving import ordering
from serving.catalog import STR, table_from_rows
from serving.ordering import adjust, apply_boosts, apply_promotions, capped_count, diversity_keep, rerank_head
from serving.rules import BoostSpec, PromotionSpec, compile_rules


def test_a_promotion_lifts_only_at_or_above_its_threshold():
    ranking = np.array([0.2, 0.5, 0.7, 0.9])
    promoted = np.array([True, True, True, False])

    scores, lifted = apply_promotions(ranking, ranking, [(0.5, promoted)])

    assert scores.tolist() == [0.2, 1.0, 1.0, 0.9]  # below: untouched; at or above: 1.0; not promoted: as is
    assert lifted.tolist() == [False, True, True, False]


def test_boosts_multiply_and_buries_divide():
    scores = apply_boosts(np.array([0.5, 0.5, 0.5]), [(2.0, np.array([True, True, False])),
                                                      (0.5, np.array([False, True, True]))])
    assert scores.tolist() == [1.0, 0.5, 0.25]


def _table():
    rows = [
        (1, "a", "A", True, False, 1.0, 10.0, "Acme", ["Shoes"], []),
        (2, "b", "B", True, False, 1.0, 10.0, "Peak", ["Shoes"], []),
        (3, "c", "C", True, False, 1.0, 10.0, "Acme", ["Home"], []),
        (4, "d", "D", True, False, 1.0, 10.0, "Lumo", ["Home"], []),
    ]
    return table_from_rows(np.array([1, 2, 3, 4]), rows)


def test_adjust_boosts_then_promotions_on_the_ranking_score():
    acme = tuple(parse_conditions([{"field": "brand", "op": "eq", "value": "Acme"}]))
    rules = compile_rules(
        promotions=[PromotionSpec(7, "push d", ("d",), threshold=0.3),
                    PromotionSpec(8, "push b", ("b",), threshold=0.7)],
        boosts=[BoostSpec(5, "acme x3", acme, 3.0)],
    )
    table, rows = _table(), np.array([0, 1, 2, 3])
    ranking = np.array([0.6, 0.5, 0.2, 0.3])

    adj = adjust(table, rows, ranking, rules.boosts, rules.promotions)

    # a: 0.6 x 3; b: promoted but 0.5 < 0.7, untouched; c: 0.2 x 3; d: 0.3 reaches 0.3 -> 1.0
    assert adj.scores.tolist() == pytest.approx([1.8, 0.5, 0.6, 1.0])
    assert adj.order.tolist() == [0, 3, 2, 1]
    (boost, matched), = adj.boosts
    assert boost.id == 5 and matched.tolist() == [True, False, True, False]
    assert [(p.id, m.tolist(), lifted.tolist()) for p, m, lifted in adj.promotions] == [
        (7, [False, False, False, True], [False, False, False, True]),
        (8, [False, True, False, False], [False, False, False, False]),
    ]


def test_a_promotion_compares_its_threshold_with_the_score_before_boosts():
    bury = tuple(parse_conditions([{"field": "brand", "op": "eq", "value": "Peak"}]))
    rules = compile_rules(promotions=[PromotionSpec(1, "b", ("b",), threshold=0.5)],
                          boosts=[BoostSpec(2, "bury peak", bury, 0.1)])
    adj = adjust(_table(), np.array([1]), np.array([0.6]), rules.boosts, rules.promotions)
    assert adj.scores.tolist() == [1.0]  # 0.6 reaches 0.5 although the bury made it 0.06: promotion wins


def test_the_diversity_cap_keeps_the_best_n_of_each_category():
    categories = np.array(["Shoes", "Shoes", "Home", "Shoes", "", "", "Home", "Home"], dtype=STR)

    assert diversity_keep(categories, 2).tolist() == [True, True, True, False, True, True, True, False]
    assert diversity_keep(categories, 1).tolist() == [True, False, True, False, True, True, False, False]
    assert diversity_keep(categories, None).all()
    assert capped_count(categories, 2) == 6 and capped_count(categories, 1) == 4 and capped_count(categories, None) == 8
    assert diversity_keep(np.zeros(0, dtype=STR), 1).tolist() == []


class Reverse:
    name = "reverse"

    def __init__(self):
        self.calls = []

    def rerank(self, tenant_id, items, context):
        self.calls.append((tenant_id, list(items), context))
        return list(reversed(range(len(items))))


class Broken:
    name = "broken"

    def __init__(self, answer):
        self.answer = answer

    def rerank(self, tenant_id, items, context):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


TENANT = 424242


def test_the_requests_reranker_reorders_the_head():
    assert rerank_head(TENANT, ["x", "y", "z"], {}) == (["x", "y", "z"], None)  # default: none
    reverse = Reverse()
    assert isinstance(reverse, ordering.Reranker)

    context = {"endpoint": "recommendations"}
    assert rerank_head(TENANT, ["x", "y", "z"], context, reverse) == (["z", "y", "x"], "reverse")
    assert reverse.calls == [(TENANT, ["x", "y", "z"], {"endpoint": "recommendations"})]
    assert rerank_head(TENANT, ["x"], {}, reverse) == (["x"], None)  # nothing to reorder


@pytest.mark.parametrize("answer", [[0, 0, 1], [0, 1], [0, 1, 5], RuntimeError("bandit down")])
def test_a_failing_reranker_leaves_the_order(answer):
    assert rerank_head(TENANT, ["x", "y", "z"], {}, Broken(answer)) == (["x", "y", "z"], None)
