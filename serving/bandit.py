"""The bandit: a Thompson-sampling re-ranker of an answer's head, learning from attributed feedback in Redis.

Model (position-based, multiplicative over the ranker). The chance that the item at slot k of an answer
earns the reward is `theta_k * c_i * b_i`: `theta_k` the slot's examination probability (fixed,
`EXAMINATION`, 1 / log2(k + 2)), `b_i` the ranker's own estimate for the item in this answer (its ranker
score when every head item has one, else 1 / log2(rank + 2) from the ranker's order) and `c_i` the item's
correction the bandit learns: what the ranker does not know (appeal it has not seen, drift). Rewards are
counted as Poisson with mean `c_i * E_i`, `E_i` the sum of `theta_k * b_i` over the item's exposures, so the
posterior of `c_i` is Gamma(m + S_i, m / g + E_i) with S_i the item's rewards, m the prior strength and g
the scale of all the variant's items (S / E over them): an item without data is the ranker's order with
noise, an item with data moves by its own evidence. Exposures and rewards decay with a half-life, so
drift is followed.

An answer: sample c_i for each of the head's items, order the head by `c_i * b_i` (the best order under the
model, since theta falls with the slot); with probability `1 - explore_share` the ranker's order is kept
instead (the exploration budget: at most that share of answers deviates from the ranker; items beyond
`head` never move). Propensities are the probability that each shown item is at its slot under this
policy, `(1 - s) [ranker put it there] + s P_TS(i at k)`, with P_TS estimated by Monte Carlo
(`PROPENSITY_DRAWS` more samples of the same posterior, the served draw counted as one of them).

State (Redis, the shop's hash tag, so one slot on a cluster):
- `recs:{T}:bandit:<scope>`: one hash per bandit variant and reward, fields `s:<pk>`, `e:<pk>`, `t:<pk>`
  (rewards, exposures, last update in seconds) and `*` for the totals; refreshed TTL `STATE_TTL`.
- `recs:{T}:bandit-answer:<recommendation id>`: what a served answer showed (scope, reward, per product id
  the pk and slot), for `ANSWER_TTL`; feedback joins it and marks each (item, reward) once, so a repeated
  event counts once.

Exposures are written when the answer is served (the storefront's impression events are not needed), the
rewards when a feedback event carrying the recommendation_id is stored (recs/ingest calls `record_feedback`
after the commit). Without Redis the bandit keeps the ranker's order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.cache import cache

from core.redis_client import raw_redis

log = logging.getLogger(__name__)

REWARDS = ("click", "add_to_cart", "purchase", "revenue")
# The event type that earns each reward (revenue: the purchase's value).
REWARD_EVENT = {"click": "click", "add_to_cart": "add_to_cart", "purchase": "purchase", "revenue": "purchase"}
NAME = "thompson"
PROPENSITY_DRAWS = 256
STATE_TTL = 30 * 86_400
ANSWER_TTL = 2 * 86_400
TOTAL = "*"

# decay_add(key, now, half-life, id, rewards, exposures): decays the id's fields to `now`, then adds.
_DECAY_ADD = """
local function decay_add(key, now, hl, id, ds, de)
  local v = redis.call('HMGET', key, 's:' .. id, 'e:' .. id, 't:' .. id)
  local s, e, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or now
  local f = 1
  if hl > 0 and now > t then f = math.pow(0.5, (now - t) / hl) end
  redis.call('HSET', key, 's:' .. id, tostring(s * f + ds), 'e:' .. id, tostring(e * f + de),
             't:' .. id, tostring(math.max(now, t)))
end
"""
# Exposures. KEYS[1]: the posterior. ARGV: now, half-life (s, 0 = none), TTL, then (id, rewards, exposures) triples.
_EXPOSE = _DECAY_ADD + """
local now, hl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 4, #ARGV, 3 do decay_add(KEYS[1], now, hl, ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# One reward, counted once per (answer, item). KEYS[1]: the answer's record, KEYS[2]: the posterior (one shop:
# one hash tag, one slot). ARGV: now, half-life, TTL, the mark's field, pk, the reward (1, or the revenue),
# "1" when it is revenue: then in units of the running mean of rewarded order values (this one included), so
# that the Gamma's shape stays a count.
_REWARD = _DECAY_ADD + """
if redis.call('HSETNX', KEYS[1], ARGV[4], '1') == 0 then return 0 end
local value = tonumber(ARGV[6])
if ARGV[7] == '1' then
  value = math.max(value, 0)
  local total = tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'revenue_sum', tostring(value)))
  local n = redis.call('HINCRBY', KEYS[2], 'revenue_n', 1)
  if total > 0 then value = value * n / total else value = 1 end
end
local now, hl = tonumber(ARGV[1]), tonumber(ARGV[2])
decay_add(KEYS[2], now, hl, ARGV[5], value, 0)
decay_add(KEYS[2], now, hl, '*', value, 0)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


def examination(slot: int) -> float:
    """The slot's examination probability in the model (slot 0 is the first)."""
    return 1.0 / math.log2(slot + 2)


@dataclass(frozen=True)
class BanditSettings:
    """A variant's bandit (experiments/config.py validates the shop's JSON)."""

    reward: str = "click"
    head: int = 5  # the ranker's first `head` items may be reordered; the rest never move
    explore_share: float = 1.0  # at most this share of answers deviates from the ranker's order
    # Two weeks: evidence is scarce per item (tens of exposures over a two-week test), so forgetting it faster
    # costs more than the drift it follows (chosen on tests/bench/_bandit_sim.py's tuning seeds, 100-103).
    half_life_hours: float = 336.0
    # In rewards: how many an item must earn before its own evidence outweighs the ranker's estimate.
    prior_strength: float = 3.0


@dataclass
class Draw:
    """What one bandit answer showed, for its exposures and the feedback's join (`commit`)."""

    scope: str
    settings: BanditSettings
    pks: list[int]  # the head's products in the shown order
    external_ids: list[str]
    bases: list[float]  # b_i, aligned with pks
    propensities: list[float]  # of every item of the answer, in its order (1.0 beyond the head)
    deviated: bool
    now: float
    explain: dict[str, Any] = field(default_factory=dict)


def state_key(tenant_id: int, scope: str) -> str:
    return str(cache.make_key(f"recs:{{{int(tenant_id)}}}:bandit:{scope}"))


def answer_key(tenant_id: int, recommendation_id: str) -> str:
    return str(cache.make_key(f"recs:{{{int(tenant_id)}}}:bandit-answer:{recommendation_id}"))


def scope_of(variant: str, reward: str) -> str:
    """One posterior per bandit variant and reward: two arms of an experiment never share what they learn."""
    return f"{variant}:{reward}"


def _bases(items: Sequence[Any]) -> np.ndarray:
    scores = [getattr(i, "ranker_score", None) for i in items]
    if all(s is not None and s > 0 for s in scores):
        return np.asarray(scores, dtype=np.float64)
    return np.asarray([examination(r) for r in range(len(items))], dtype=np.float64)


def _decayed(value: float, updated: float, now: float, half_life_s: float) -> float:
    if half_life_s <= 0 or now <= updated:
        return value
    return value * 0.5 ** ((now - updated) / half_life_s)


@dataclass
class Posterior:
    shape: np.ndarray  # Gamma shape per head item
    rate: np.ndarray

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """One draw of every item's correction, or `size` draws (rows)."""
        n = len(self.shape)
        return rng.gamma(self.shape, 1.0 / self.rate, size=(size, n) if size else n)

    @property
    def mean(self) -> np.ndarray:
        return self.shape / self.rate


def read_posterior(client: Any, tenant_id: int, scope: str, pks: Sequence[int], settings: BanditSettings,
                   now: float) -> Posterior:
    """The head items' posteriors of c_i (one HMGET), decayed to `now`."""
    ids = [*(str(pk) for pk in pks), TOTAL]
    names = [f"{kind}:{i}" for i in ids for kind in ("s", "e", "t")]
    values = client.hmget(state_key(tenant_id, scope), names)
    hl = settings.half_life_hours * 3600.0
    s, e = np.zeros(len(ids)), np.zeros(len(ids))
    for j in range(len(ids)):
        raw_s, raw_e, raw_t = values[3 * j:3 * j + 3]
        if raw_s is None:
            continue
        t = float(raw_t) if raw_t is not None else now
        s[j], e[j] = _decayed(float(raw_s), t, now, hl), _decayed(float(raw_e or 0), t, now, hl)
    m = settings.prior_strength
    scale = (s[-1] + 1.0) / (e[-1] + 1.0)  # g, pulled towards 1 (the ranker is right) while data is scarce
    return Posterior(shape=m + s[:-1], rate=m / scale + e[:-1])


def order_by_draw(draw: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """The head's order for sampled corrections (best expected reward first; ties keep the ranker's order)."""
    return np.argsort(-(draw * bases), kind="stable", axis=-1)


def placement_probabilities(posterior: Posterior, bases: np.ndarray, rng: np.random.Generator,
                            draws: int = PROPENSITY_DRAWS) -> np.ndarray:
    """P[i, k]: Monte Carlo estimate of the chance that Thompson puts the head's item i (ranker order) at slot k."""
    n = len(bases)
    orders = order_by_draw(posterior.sample(rng, draws), bases)  # (draws, n): slot -> item
    counts = np.zeros((n, n))
    np.add.at(counts, (orders, np.broadcast_to(np.arange(n), orders.shape)), 1.0)
    return counts / draws


class Bandit:
    """The re-ranker of one bandit variant (serving.ordering.Reranker). `clock` and `rng` are seams."""

    name = NAME

    def __init__(self, settings: BanditSettings, variant: str, *, clock: Callable[[], float] = time.time,
                 rng: np.random.Generator | None = None, client: Any = None) -> None:
        self.settings = settings
        self.scope = scope_of(variant, settings.reward)
        self.clock = clock
        self.rng = rng if rng is not None else np.random.default_rng()
        self._client = client
        self.draw: Draw | None = None  # the last answer's, read by serving.answers

    def client(self) -> Any:
        return self._client if self._client is not None else raw_redis()

    def rerank(self, tenant_id: int, items: Sequence[Any], context: dict[str, Any]) -> Sequence[int]:
        n = min(self.settings.head, len(items))
        client = self.client()
        self.draw = None
        if client is None or n < 2:
            return list(range(len(items)))
        head = items[:n]
        pks = [int(i.product_pk) for i in head]
        bases = _bases(head)
        now = self.clock()
        posterior = read_posterior(client, tenant_id, self.scope, pks, self.settings, now)
        share = self.settings.explore_share
        explore = self.rng.random() < share
        thompson = order_by_draw(posterior.sample(self.rng), bases)
        order = thompson if explore else np.arange(n)
        ts = placement_probabilities_with(placement_probabilities(posterior, bases, self.rng), thompson, n)
        propensity = [(1.0 - share) * float(order[k] == k) + share * float(ts[order[k], k]) for k in range(n)]
        deviated = bool(np.any(order != np.arange(n)))
        self.draw = Draw(
            scope=self.scope, settings=self.settings, pks=[pks[i] for i in order],
            external_ids=[str(head[i].external_id) for i in order], bases=[float(bases[i]) for i in order],
            propensities=propensity + [1.0] * (len(items) - n), deviated=deviated, now=now,
            explain={"reward": self.settings.reward, "head": n, "explore_share": share, "explored": bool(explore),
                     "deviated": deviated,
                     "posterior_mean": [round(float(posterior.mean[i]), 6) for i in order]},
        )
        return [*order.tolist(), *range(n, len(items))]


def placement_probabilities_with(placement: np.ndarray, served_order: np.ndarray, n: int) -> np.ndarray:
    """The Monte Carlo estimate with the served Thompson draw counted as one more sample."""
    served = np.zeros((n, n))
    served[served_order, np.arange(n)] = 1.0
    return (placement * PROPENSITY_DRAWS + served) / (PROPENSITY_DRAWS + 1)


def commit(tenant_id: int, recommendation_id: str, draw: Draw, *, client: Any = None) -> None:
    """After the answer is stamped: its exposures into the posterior and its record for the feedback's join
    (one round trip). Never raises: a lost write costs the bandit one answer's evidence."""
    client = client if client is not None else raw_redis()
    if client is None:
        return
    settings = draw.settings
    args: list[Any] = [draw.now, settings.half_life_hours * 3600.0, STATE_TTL]
    total = 0.0
    record: dict[str, str] = {"scope": draw.scope, "reward": settings.reward, "hl": str(settings.half_life_hours)}
    for slot, (pk, ext, base) in enumerate(zip(draw.pks, draw.external_ids, draw.bases, strict=True)):
        exposure = examination(slot) * base
        total += exposure
        args += [pk, 0.0, exposure]
        record[f"i:{ext}"] = str(pk)
    args += [TOTAL, 0.0, total]
    try:
        pipe = client.pipeline(transaction=False)
        pipe.eval(_EXPOSE, 1, state_key(tenant_id, draw.scope), *args)
        key = answer_key(tenant_id, recommendation_id)
        pipe.hset(key, mapping=record)
        pipe.expire(key, ANSWER_TTL)
        pipe.execute()
    except Exception:
        log.warning("bandit exposures of tenant %s not written", tenant_id, exc_info=True)


@dataclass(frozen=True)
class Feedback:
    """One stored event that carries a recommendation_id (the shop's product id, the event type, revenue)."""

    recommendation_id: str
    product_id: str
    event_type: str
    revenue: float = 0.0


FEEDBACK_TYPES = frozenset(REWARD_EVENT.values())


def record_feedback(tenant_id: int, feedback: Sequence[Feedback], *, clock: Callable[[], float] = time.time,
                    client: Any = None) -> int:
    """Rewards of this shop's bandit answers into their posteriors; returns how many were counted. Feedback for
    an answer this shop's bandit did not serve (another shop's, a static variant's, expired) is ignored: the
    answer record is looked up under this shop's key. Never raises."""
    feedback = [f for f in feedback if f.event_type in FEEDBACK_TYPES and f.recommendation_id]
    client = client if client is not None else raw_redis()
    if client is None or not feedback:
        return 0
    try:
        return _record(client, tenant_id, feedback, clock())
    except Exception:
        log.warning("bandit feedback of tenant %s not counted", tenant_id, exc_info=True)
        return 0


def _record(client: Any, tenant_id: int, feedback: Sequence[Feedback], now: float) -> int:
    """Two round trips: the answers' records, then one script per reward (marked and added atomically)."""
    pipe = client.pipeline(transaction=False)
    for fb in feedback:
        pipe.hmget(answer_key(tenant_id, fb.recommendation_id), ["scope", "reward", "hl", f"i:{fb.product_id}"])
    found = pipe.execute()
    pipe = client.pipeline(transaction=False)
    queued = 0
    for fb, (scope, reward, hl, pk) in zip(feedback, found, strict=True):
        if scope is None or pk is None:
            continue  # no answer of this shop's bandit, or not an item of its head
        reward = _text(reward)
        if REWARD_EVENT.get(reward) != fb.event_type:
            continue  # not this variant's reward
        value = fb.revenue if reward == "revenue" else 1.0
        pipe.eval(_REWARD, 2, answer_key(tenant_id, fb.recommendation_id), state_key(tenant_id, _text(scope)),
                  now, float(hl) * 3600.0, STATE_TTL, f"r:{fb.product_id}", _text(pk), value,
                  "1" if reward == "revenue" else "0")
        queued += 1
    return sum(int(x) for x in pipe.execute()) if queued else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
