"""Cached answers: keyed by tenant, customer, request shape, model version and the customer's generation.

A customer's generation changes whenever events of theirs are stored, so their cached answers stop
being found at once (a purchase must not keep showing the bought item); the old entries simply expire.
Customers are named by the shop's external id, which both the event and the recommendation paths hold
without a query. The tenant's rules generation (bumped after every write of a rule, promotion, boost or
setting) is part of every key too, so a rule change makes all the tenant's cached answers unreachable at
once. With Redis down (IGNORE_EXCEPTIONS), reads miss and writes are dropped: answers are
served uncached.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import NoScriptError

from recs.recommendation_cache import customer_prefix, tenant_prefix
from serving import catalog_changes
from tenants.redis_client import raw_redis, replyless_writer

log = logging.getLogger(__name__)

# Must outlive every cached answer that depends on it.
GENERATION_TTL_SECONDS = 24 * 3600


def _generation_prefix(tenant_id: int) -> str:
    return f"recs-gen:{tenant_id}:"


def _generation_key(tenant_id: int, customer_external_id: str) -> str:
    digest = hashlib.sha256(customer_external_id.encode()).hexdigest()[:32]
    return f"{_generation_prefix(tenant_id)}{digest}"


def customer_generation(tenant_id: int, customer_external_id: str | None) -> int:
    if not customer_external_id:
        return 0
    return int(cache.get(_generation_key(tenant_id, customer_external_id)) or 0)


# One Lua call sets every key of a batch (SET ... EX each): a 10,000-event batch names thousands of
# customers, and set_many (a MULTI of one SET per key, each key made and encoded in Python) cost 25-120 ms
# a batch. The stamp is stored as a bare integer, which is how django-redis stores ints, so cache.get
# (customer_generation) reads it unchanged.
_BUMP_SCRIPT = "for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'EX', ARGV[2]) end return #KEYS"


def _raw_generation_keys(tenant_id: int, customer_external_ids: set[str]) -> list[str]:
    """The Redis keys (cache prefix and version included) of these customers' generations.

    cache.make_key per key costs microseconds that add up over thousands of customers; with the default
    key function (prefix:version:key) the made prefix of one key serves for all of them."""
    prefix = _generation_prefix(tenant_id)
    made = str(cache.make_key(prefix))
    if not made.endswith(prefix):  # a custom KEY_FUNCTION: make each key
        return [str(cache.make_key(_generation_key(tenant_id, c))) for c in customer_external_ids]
    sha256 = hashlib.sha256
    return [made + sha256(c.encode()).hexdigest()[:32] for c in customer_external_ids]


def bump_customer_generation(tenant_id: int, customer_external_ids: Iterable[str]) -> None:
    """Invalidate the cached answers of these customers (called after their events are stored).

    A fresh timestamp rather than an increment: one round trip, no read-modify-write race, and a key
    that expired cannot come back to an old value."""
    stamp = time.time_ns()
    customers = {c for c in customer_external_ids if c}
    if not customers:
        return
    client = raw_redis()
    if client is None:
        cache.set_many({_generation_key(tenant_id, c): stamp for c in customers}, GENERATION_TTL_SECONDS)
        return
    keys = _raw_generation_keys(tenant_id, customers)
    try:
        if len(keys) == 1:  # a single event's customer: a plain SET packs and parses cheaper than EVAL
            client.set(keys[0], stamp, ex=GENERATION_TTL_SECONDS)
        else:
            client.eval(_BUMP_SCRIPT, len(keys), *keys, stamp, GENERATION_TTL_SECONDS)
    except Exception:  # Redis down: like the cache API (IGNORE_EXCEPTIONS), drop the write
        log.warning("cache generations not bumped for %s customers of tenant %s", len(keys), tenant_id,
                    exc_info=True)


# The single-event API sends its customer's bump on the request's admission round trip, before the event
# is stored, instead of in a round trip of its own after the commit (that round trip was about a sixth of a
# single event's CPU). An answer computed between that bump and the commit would not show the event, so the
# bump first sets a marker that expires by itself after PENDING_MS; while it exists, lookups say that what
# is computed must not be stored (Found.key None, storable_answer_key None). The writer skips its bump after
# the commit only when the commit finished with half the marker's life to spare (`pending_bump_covers`);
# otherwise it bumps again after the commit, as every other path does. Readers never wait on the marker.
PENDING_MS = 1000
_PENDING_SUFFIX = ":pending"


def queue_pending_bump(pipe: Any, tenant_id: int, customer_external_id: str) -> None:
    """Queue, on a Redis pipeline or round trip, this customer's bump with its pending marker (marker first: a lookup
    between the two commands sees the marker and stores nothing)."""
    if not customer_external_id:
        return
    key = _generation_key(tenant_id, customer_external_id)
    pipe.set(cache.make_key(key + _PENDING_SUFFIX), 1, px=PENDING_MS)
    pipe.set(cache.make_key(key), time.time_ns(), ex=GENERATION_TTL_SECONDS)


def pending_bump_applied(replies: list[Any] | None) -> bool:
    """True when the replies of queue_pending_bump's commands say both were applied."""
    return replies is not None and len(replies) == 2 and all(reply is True for reply in replies)


def pending_bump_covers(sent_at: float) -> bool:
    """True when a commit finishing now is covered by a pending bump sent at `sent_at` (time.monotonic()
    before the bump was sent): its marker outlives the commit by at least half of its life."""
    return time.monotonic() - sent_at < PENDING_MS / 2000


def _rules_generation_key(tenant_id: int) -> str:
    return f"recs:rules-gen:{int(tenant_id)}"


def rules_generation(tenant_id: int) -> int:
    """The tenant's rules generation (0 before the first rule write, or with Redis down); inside
    `computing_with`, the one the answer's lookup read."""
    seen = seen_by_lookup(tenant_id)
    if seen is not None:
        return seen.rules_generation
    return int(cache.get(_rules_generation_key(tenant_id)) or 0)


def bump_rules_generation(tenant_id: int) -> None:
    """Invalidate every cached answer of the tenant and make each process recompile its rules (called
    after a rule, promotion, boost or settings write commits). A timestamp, as for customers."""
    cache.set(_rules_generation_key(tenant_id), time.time_ns(), GENERATION_TTL_SECONDS)


ACTIVE = object()  # answer_key's model_version: the tenant's active version, read with the generations


def _shape_hash(shape: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _compose_key(tenant_id: int, kind: str, shape_hash: str, customer: str | None, generation: Any, rules: Any,
                 model_version: Any) -> str:
    """The answer's cache key; lookup_answer's script composes the same string in Redis."""
    if customer:
        return f"{customer_prefix(tenant_id, customer)}{kind}:{generation}:{rules}:{shape_hash}:{model_version}"
    return f"{tenant_prefix(tenant_id)}{kind}:{rules}:{shape_hash}:{model_version}"


def answer_key(
    tenant_id: int, kind: str, shape: dict[str, Any], model_version: int | object | None = ACTIVE, *,
    customer: str | None = None,
) -> str:
    """A customer's answers live under the prefix GDPR erasure deletes (recs/recommendation_cache.py);
    their generation is part of the key, so an event makes the old entries unreachable at once; so is the
    tenant's rules generation, so a rule change does the same for every answer of the tenant.

    The generations (and the active version id, by default) are read in one MGET."""
    return _read_key(tenant_id, kind, shape, model_version, customer)[0]


def storable_answer_key(
    tenant_id: int, kind: str, shape: dict[str, Any], model_version: int | object | None = ACTIVE, *,
    customer: str | None = None,
) -> str | None:
    """answer_key, or None while the customer's event is being stored (its pending marker exists): an
    answer computed now must not be stored. Read the key before computing the answer."""
    key, pending = _read_key(tenant_id, kind, shape, model_version, customer)
    return None if pending else key


def _read_key(tenant_id: int, kind: str, shape: dict[str, Any], model_version: int | object | None,
              customer: str | None) -> tuple[str, bool]:
    # Imported here: ingestion imports this module for the generation bump, and must not load the models.
    from serving.registry_cache import active_version_id
    from training.registry.lifecycle import active_version_cache_key

    wanted = [_rules_generation_key(tenant_id)]
    if customer:
        generation_key = _generation_key(tenant_id, customer)
        wanted += [generation_key, generation_key + _PENDING_SUFFIX]
    if model_version is ACTIVE:
        wanted.append(active_version_cache_key(tenant_id))
    got = cache.get_many(wanted)
    rules = int(got.get(wanted[0]) or 0)
    if model_version is ACTIVE:
        cached = got.get(wanted[-1])
        # A miss (expired, or Redis down) reads the database and refills the cache.
        model_version = active_version_id(tenant_id) if cached is None else (int(cached) or None)
    generation = int(got.get(wanted[1]) or 0) if customer else 0
    pending = bool(customer) and got.get(wanted[2]) is not None
    return _compose_key(tenant_id, kind, _shape_hash(shape), customer, generation, rules, model_version or 0), pending


# The hot path's one round trip: read the generations and the active version id, compose the answer's
# key exactly as _compose_key does (stored generations and version ids are bare integers, as django-redis
# stores ints, so their text is what Python would format), and read the answer, unless the customer's
# pending marker exists (then a sixth element says so: see PENDING_MS). The fifth element is the tenant's
# catalog change counter (serving/catalog_changes.py), to which a miss's computation syncs the product rows
# its process kept. An unknown active version (its cache entry expired) returns no key: the caller falls
# back to answer_key, which reads the database.
# The answer's key is composed here rather than declared in KEYS, so on Redis Cluster these keys would
# need one hash tag per tenant.
_LOOKUP_SCRIPT = """
local version = redis.call('GET', KEYS[2])
if not version then return {false, false} end
local rules = redis.call('GET', KEYS[1]) or '0'
local catalog = redis.call('GET', KEYS[3]) or '0'
local key
if #KEYS == 4 then
  local generation = redis.call('GET', KEYS[4]) or '0'
  key = ARGV[2] .. ARGV[3] .. ':' .. generation .. ':' .. rules .. ':' .. ARGV[4] .. ':' .. version
  if redis.call('EXISTS', KEYS[4] .. ARGV[5]) == 1 then return {key, false, rules, version, catalog, 1} end
else
  key = ARGV[2] .. ARGV[3] .. ':' .. rules .. ':' .. ARGV[4] .. ':' .. version
end
return {key, redis.call('GET', ARGV[1] .. key), rules, version, catalog}
"""
_LOOKUP_SHA = hashlib.sha1(_LOOKUP_SCRIPT.encode()).hexdigest()


def _made_prefix() -> str | None:
    """What the cache puts before every key (prefix:version:), or None under a custom KEY_FUNCTION."""
    made = str(cache.make_key(""))
    return made if str(cache.make_key("x")) == made + "x" else None


class Seen(NamedTuple):
    """What an answer's lookup read to compose its key: a miss is computed with the same rules
    generation and active version (`computing_with`), so the answer stored under that key is the one
    they give, and the computation does not read them again (two Redis round trips per miss)."""

    active_version: int | None
    rules_generation: int
    catalog_seq: int | None = None  # serving.catalog_changes' counter (None: not read)


class Found(NamedTuple):
    """A lookup's result: the answer's cache key (None: store nothing computed now, the customer's event
    is being stored), the cached answer or None, and what the key was composed from (None when the
    lookup could not say)."""

    key: str | None
    answer: dict | None
    seen: Seen | None = None


_seen: contextvars.ContextVar[tuple[int, Seen] | None] = contextvars.ContextVar("recs_seen_by_lookup", default=None)


@contextlib.contextmanager
def computing_with(tenant_id: int, seen: Seen | None) -> Iterator[None]:
    """Inside: rules_generation() and serving.registry_cache.active_version_id() of this tenant answer
    what the lookup read (`seen`; None changes nothing)."""
    token = _seen.set((tenant_id, seen) if seen is not None else None)
    try:
        yield
    finally:
        _seen.reset(token)


def seen_by_lookup(tenant_id: int) -> Seen | None:
    current = _seen.get()
    return current[1] if current is not None and current[0] == tenant_id else None


def _int(raw: Any) -> int:
    return int(raw.decode() if isinstance(raw, bytes) else raw)


@dataclass(frozen=True)
class AnswerLookup:
    """One answer's lookup, ready to be sent on any Redis client or pipeline (the API queues it on the
    request's admission round trip: tenants.admission, `prefetch`)."""

    tenant_id: int
    kind: str
    shape: dict[str, Any]
    customer: str | None
    keys: tuple[str, ...]
    args: tuple[str, ...]

    def send(self, client: Any) -> Any:
        """Run the lookup on a client (returns its reply for result()) or queue it on a pipeline."""
        # EVALSHA by hand: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a round trip of its
        # own, and EVAL would send (and make Redis hash) the whole body every time. A Redis that does not
        # know the script yet (restarted, flushed) answers NOSCRIPT, and result() loads it.
        return client.evalsha(_LOOKUP_SHA, len(self.keys), *self.keys, *self.args)

    def result(self, reply: Any) -> Found:
        """The answer's key and the cached answer or None, from the script's reply (an exception: Redis
        failed, a miss)."""
        if isinstance(reply, NoScriptError):
            try:
                reply = raw_redis().eval(_LOOKUP_SCRIPT, len(self.keys), *self.keys, *self.args)
            except Exception as exc:
                reply = exc
        if isinstance(reply, Exception):
            log.warning("answer cache unavailable: %s", reply)
            return Found(self.key_without_script(), None)
        key, raw = reply[0], reply[1]
        if key is None:  # the active version is not cached: the database says which it is
            key = self.key_without_script()
            return Found(key, get_answer(key) if key is not None else None)
        key = key.decode() if isinstance(key, bytes) else key
        seen = Seen(_int(reply[3]) or None, _int(reply[2]), _int(reply[4]))
        if len(reply) > 5:  # the customer's pending marker
            return Found(None, None, seen)
        if raw is None:
            return Found(key, None, seen)
        try:
            return Found(key, cache.client.decode(raw), seen)
        except Exception:  # an unreadable entry is a miss
            return Found(key, None, seen)

    def key_without_script(self) -> str | None:
        return storable_answer_key(self.tenant_id, self.kind, self.shape, customer=self.customer)


def answer_lookup(tenant_id: int, kind: str, shape: dict[str, Any], *, customer: str | None = None
                  ) -> AnswerLookup | None:
    """The lookup of an answer in one round trip, or None where answers are not cached in Redis."""
    from training.registry.lifecycle import active_version_cache_key  # see answer_key

    made_prefix = _made_prefix() if raw_redis() is not None else None
    if made_prefix is None or settings.RECSVC_RECS_CACHE_SECONDS <= 0:
        return None
    keys = [_rules_generation_key(tenant_id), active_version_cache_key(tenant_id), catalog_changes.seq_name(tenant_id)]
    if customer:
        keys.append(_generation_key(tenant_id, customer))
    head = customer_prefix(tenant_id, customer) if customer else tenant_prefix(tenant_id)
    return AnswerLookup(tenant_id, kind, shape, customer, tuple(made_prefix + k for k in keys),
                        (made_prefix, head, kind, _shape_hash(shape), _PENDING_SUFFIX))


def lookup_answer(tenant_id: int, kind: str, shape: dict[str, Any], *, customer: str | None = None) -> Found:
    """The cache key of this answer under the active version, and the cached answer or None: one Redis
    round trip where the cache is Redis (answer_key and get_answer cost two)."""
    lookup = answer_lookup(tenant_id, kind, shape, customer=customer)
    if lookup is None:
        key = storable_answer_key(tenant_id, kind, shape, customer=customer)
        return Found(key, get_answer(key) if key is not None else None)
    try:
        reply = lookup.send(raw_redis())
    except Exception as exc:  # Redis down: like the cache API (IGNORE_EXCEPTIONS), a miss
        reply = exc
    return lookup.result(reply)


def get_answer(key: str) -> dict | None:
    if settings.RECSVC_RECS_CACHE_SECONDS <= 0:
        return None
    return cache.get(key)


def answer_ttl(max_seconds: float | None = None) -> int:
    """Seconds a cached answer lives: RECSVC_RECS_CACHE_SECONDS, capped by `max_seconds` (e.g. the time
    until a promotion starts or ends, so a cached answer never hides that change). 0: do not cache."""
    ttl = settings.RECSVC_RECS_CACHE_SECONDS
    if max_seconds is not None:
        ttl = min(ttl, int(max_seconds))
    return max(ttl, 0)


def set_answer(key: str, answer: dict, *, max_seconds: float | None = None) -> None:
    """Store an answer for `answer_ttl(max_seconds)` seconds. On Redis the write is not waited for
    (tenants.redis_client.ReplylessWriter): other connections see it moments later, at once after
    `answers_written()`; a write lost to a Redis failure is a later miss, as a failed `cache.set` was."""
    ttl = answer_ttl(max_seconds)
    if ttl <= 0:
        return
    writer = replyless_writer()
    if writer is None:
        cache.set(key, answer, ttl)
    else:  # the key and the value exactly as django-redis's `set` makes them (lookups decode with it)
        writer.send("SET", cache.make_key(key), cache.client.encode(answer), "EX", ttl)


def answers_written() -> None:
    """Return once every answer this process stored is readable by other connections (a batch whose
    answers are read next; tests)."""
    writer = replyless_writer()
    if writer is not None:
        writer.barrier()
