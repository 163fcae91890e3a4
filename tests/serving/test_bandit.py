"""The bandit (serving/bandit.py) on real Redis: posteriors learn from attributed feedback, the head moves
toward rewarded items, the exploration budget holds, propensities describe the policy, and feedback never
crosses shops. Items are funnel ScoredItems; the clock and the random generator are the bandit's seams."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.conf import settings as django_settings

from core.redis_client import raw_redis
from serving.bandit import (
    Bandit,
    BanditSettings,
    Feedback,
    answer_key,
    commit,
    placement_probabilities,
    read_posterior,
    record_feedback,
    state_key,
)
from serving.funnel import ScoredItem

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="the bandit's state lives in Redis")

SHOP, OTHER = 910_001, 910_002
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _items(n: int = 8) -> list[ScoredItem]:
    """The ranker's answer: p0 best, scores falling."""
    return [ScoredItem(product_pk=100 + i, external_id=f"p{i}", title=f"P{i}", score=0.5 - 0.02 * i,
                       ranker_score=0.5 - 0.02 * i) for i in range(n)]


def _serve(bandit: Bandit, tenant: int = SHOP, items: list[ScoredItem] | None = None) -> tuple[str, list[str], list]:
    """One answer: (recommendation id, shown product ids, propensities), its exposures committed."""
    items = items or _items()
    order = bandit.rerank(tenant, items, {"endpoint": "recommendations"})
    shown = [items[i].external_id for i in order]
    rid = str(uuid.uuid4())
    if bandit.draw is not None:
        commit(tenant, rid, bandit.draw)
    return rid, shown, bandit.draw.propensities if bandit.draw else None


def _mean(tenant: int, scope: str, pks: list[int], settings: BanditSettings, now: float = T0) -> np.ndarray:
    return read_posterior(raw_redis(), tenant, scope, pks, settings, now).mean


def test_feedback_with_the_recommendation_id_updates_the_posterior_once():
    settings = BanditSettings(reward="click", head=5)
    bandit = Bandit(settings, "7:bandit", clock=Clock(), rng=np.random.default_rng(1))
    rid, shown, _ = _serve(bandit)
    client = raw_redis()
    exposures = {k.decode(): float(v) for k, v in client.hgetall(state_key(SHOP, bandit.scope)).items()
                 if k.startswith(b"e:")}
    assert set(exposures) == {f"e:{100 + i}" for i in range(5)} | {"e:*"}  # the head's five, and the total
    before = _mean(SHOP, bandit.scope, [100, 101, 102, 103, 104], settings)

    clicked = shown[2]
    counted = record_feedback(SHOP, [Feedback(rid, clicked, "click"), Feedback(rid, clicked, "click"),
                                     Feedback(rid, shown[0], "add_to_cart"), Feedback(rid, "p7", "click")],
                              clock=Clock())
    after = _mean(SHOP, bandit.scope, [100, 101, 102, 103, 104], settings)

    assert counted == 1  # the repeat counts once; add_to_cart is not this variant's reward; p7 was not in the head
    index = int(clicked[1:])
    rewards = {k.decode(): float(v) for k, v in client.hgetall(state_key(SHOP, bandit.scope)).items()
               if k.startswith(b"s:")}
    assert rewards == {**{f"s:{100 + i}": 0.0 for i in range(5)}, f"s:{100 + index}": 1.0, "s:*": 1.0}
    lift = after / before  # the shop's scale rose for every item; the clicked item's correction rose most
    assert lift[index] > 1 and lift[index] > np.delete(lift, index).max()
    assert record_feedback(SHOP, [Feedback(rid, clicked, "click")], clock=Clock()) == 0  # still once


def test_revenue_reward_counts_purchases_by_their_value():
    settings = BanditSettings(reward="revenue", head=3)
    bandit = Bandit(settings, "7:rev", clock=Clock(), rng=np.random.default_rng(2))
    first, shown, _ = _serve(bandit)
    second, _, _ = _serve(bandit)
    assert record_feedback(SHOP, [Feedback(first, shown[0], "click")]) == 0
    assert record_feedback(SHOP, [Feedback(first, "p0", "purchase", 10.0),
                                  Feedback(second, "p1", "purchase", 30.0)], clock=Clock()) == 2
    fields = raw_redis().hgetall(state_key(SHOP, bandit.scope))
    # In units of the running mean of rewarded order values: 10 / 10, then 30 / 20.
    assert float(fields[b"s:100"]) == pytest.approx(1.0) and float(fields[b"s:101"]) == pytest.approx(1.5)


def test_the_head_moves_toward_rewarded_items():
    settings = BanditSettings(reward="click", head=5, half_life_hours=0)
    clock, rng = Clock(), np.random.default_rng(3)
    bandit = Bandit(settings, "7:learn", clock=clock, rng=rng)
    appeal = {"p0": 0.05, "p1": 0.05, "p2": 0.05, "p3": 0.05, "p4": 0.6}  # the ranker put the best last
    firsts = []
    for _ in range(300):
        rid, shown, _ = _serve(bandit)
        clicks = [Feedback(rid, p, "click") for slot, p in enumerate(shown[:5])
                  if rng.random() < appeal[p] / np.log2(slot + 2)]
        record_feedback(SHOP, clicks, clock=clock)
        clock.now += 1
        firsts.append(shown[0])
    assert firsts[:30].count("p4") < 20
    assert firsts[-100:].count("p4") >= 90  # learned: the rewarded item leads


def test_the_exploration_budget_holds():
    settings = BanditSettings(reward="click", head=3, explore_share=0.2)
    rng = np.random.default_rng(4)
    bandit = Bandit(settings, "7:budget", clock=Clock(), rng=rng)
    items = _items(8)
    # Strong evidence that the ranker's order is wrong: the bandit would move p2 up in every answer it may.
    raw_redis().hset(state_key(SHOP, bandit.scope), mapping={"s:102": 500, "e:102": 100, "t:102": T0})
    deviated = 0
    for _ in range(1000):
        _, shown, propensities = _serve(bandit, items=items)
        assert shown[3:] == [f"p{i}" for i in range(3, 8)]  # beyond the head nothing moves
        assert propensities[3:] == [1.0] * 5
        deviated += shown[:3] != ["p0", "p1", "p2"]
    assert 0.2 - 3 * np.sqrt(0.16 / 1000) < deviated / 1000 <= 0.2 + 3 * np.sqrt(0.16 / 1000)

    never = Bandit(BanditSettings(reward="click", head=3, explore_share=0.0), "7:budget", clock=Clock(), rng=rng)
    for _ in range(50):
        _, shown, propensities = _serve(never, items=items)
        assert shown == [f"p{i}" for i in range(8)] and propensities == [1.0] * 8


def test_propensities_are_the_policys_placement_probabilities():
    settings = BanditSettings(reward="click", head=4, explore_share=0.5)
    rng = np.random.default_rng(5)
    bandit = Bandit(settings, "7:prop", clock=Clock(), rng=rng)
    items = _items(6)
    # Some evidence so that the placements are neither certain nor uniform; exposures are not committed
    # below, so the posterior stays fixed while the frequencies are counted.
    raw_redis().hset(state_key(SHOP, bandit.scope), mapping={"s:101": 8, "e:101": 6, "t:101": T0,
                                                             "s:103": 5, "e:103": 5, "t:103": T0})
    counts: dict[tuple[str, int], int] = {}
    logged: dict[tuple[str, int], list[float]] = {}
    runs = 3000
    for _ in range(runs):
        order = bandit.rerank(SHOP, items, {})
        for slot in range(4):
            key = (items[order[slot]].external_id, slot)
            counts[key] = counts.get(key, 0) + 1
            logged.setdefault(key, []).append(bandit.draw.propensities[slot])
        assert all(0 < p <= 1 for p in bandit.draw.propensities) and bandit.draw.propensities[4:] == [1.0, 1.0]
    for key, n in counts.items():
        if n >= 100:  # the logged propensity of a placement estimates how often the policy makes it
            assert np.mean(logged[key]) == pytest.approx(n / runs, abs=0.03), key
    # Thompson's placement probabilities: every slot holds one item and every item one slot.
    posterior = read_posterior(raw_redis(), SHOP, bandit.scope, [100, 101, 102, 103], settings, T0)
    placement = placement_probabilities(posterior, np.array([0.5, 0.48, 0.46, 0.44]), rng)
    assert np.allclose(placement.sum(axis=0), 1.0) and np.allclose(placement.sum(axis=1), 1.0)


def test_feedback_for_another_shops_recommendation_never_updates_this_shop():
    settings = BanditSettings(reward="click", head=5)
    mine = Bandit(settings, "7:bandit", clock=Clock(), rng=np.random.default_rng(6))
    rid, shown, _ = _serve(mine, tenant=SHOP)
    client = raw_redis()
    before = client.hgetall(state_key(SHOP, mine.scope))

    assert record_feedback(OTHER, [Feedback(rid, shown[0], "click")]) == 0  # the other shop names my answer
    assert client.hgetall(state_key(SHOP, mine.scope)) == before
    assert not client.exists(state_key(OTHER, mine.scope)) and not client.exists(answer_key(OTHER, rid))
    assert record_feedback(SHOP, [Feedback(rid, shown[0], "click")]) == 1  # my own shop's event counts


def test_old_evidence_fades_with_the_half_life():
    settings = BanditSettings(reward="click", head=2, half_life_hours=1.0)
    clock = Clock()
    bandit = Bandit(settings, "7:decay", clock=clock, rng=np.random.default_rng(7))
    rid, shown, _ = _serve(bandit)
    record_feedback(SHOP, [Feedback(rid, shown[0], "click")], clock=clock)
    pk = int(shown[0][1:]) + 100
    client = raw_redis()
    post = read_posterior(client, SHOP, bandit.scope, [pk], settings, T0)
    later = read_posterior(client, SHOP, bandit.scope, [pk], settings, T0 + 3600)
    m = settings.prior_strength
    assert later.shape[0] - m == pytest.approx((post.shape[0] - m) / 2)


def test_under_the_defaults_a_few_clicks_from_days_ago_still_lead_the_head():
    # Per item, evidence is scarce (tens of exposures over a test): the default half-life keeps days-old
    # clicks, and the default prior lets a handful of them outweigh the ranker's slight preference.
    settings = BanditSettings(reward="click", head=2)
    bandit = Bandit(settings, "7:defaults", clock=Clock(), rng=np.random.default_rng(8))
    three_days_ago = T0 - 3 * 86_400
    raw_redis().hset(state_key(SHOP, bandit.scope), mapping={
        "s:100": 0, "e:100": 4, "t:100": three_days_ago, "s:101": 6, "e:101": 4, "t:101": three_days_ago,
        "s:*": 6, "e:*": 8, "t:*": three_days_ago})
    posterior = read_posterior(raw_redis(), SHOP, bandit.scope, [100, 101], settings, T0)
    kept = (posterior.shape[1] - settings.prior_strength) / 6
    assert 0.85 < kept < 0.9  # three days of a two-week half-life
    firsts = [_serve(bandit, items=_items(2))[1][0] for _ in range(300)]
    assert firsts.count("p1") >= 0.8 * 300  # p1 earned 6 clicks, p0 none; the ranker scored p0 a little higher
